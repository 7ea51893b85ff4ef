"""Alembic environment, run by `flask db ...` and by db_manage.py: see db_manage_tool/environment.py.

Settings for Alembic's context.configure() go in the application's Migrate(...) call, e.g.
Migrate(app, db, include_object=...): they are merged with the tool's.
"""
from db_manage_tool.environment import run

run()
