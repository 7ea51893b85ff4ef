"""Every model of the application, imported here so that migrations see its table.

Add one line per new model file (the guide's rule).
"""
from app.models.user import User
from app.models.post import Post
from app.models.page_view import PageView

__all__ = ["User", "Post", "PageView"]
