"""The tool behind db_manage.py: database management for any Flask-SQLAlchemy + Flask-Migrate application.

It never imports the application by name: it loads it as `flask` does (FLASK_APP), and
finds the models and migrations through Flask-Migrate. Importing this package is cheap:
each command imports only the modules it uses.
"""
