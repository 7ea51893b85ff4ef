"""Every model of the application, imported here so that migrations see its table.

Add one line per new model file (the guide's rule). Every other module of this folder is
imported too, so a model whose line was forgotten is still seen by `migrate`.
"""
import importlib
import pkgutil

from app.models.user import User
from app.models.post import Post
from app.models.page_view import PageView

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["User", "Post", "PageView"]
