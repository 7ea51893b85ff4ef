"""The application for `flask` (found as wsgi.py) and for gunicorn."""
from inventory import create_app

app = create_app()
