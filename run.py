"""The application entry point: FLASK_APP for `flask db ...` and db_manage.py, and `python run.py` serves it."""
from app import create_app

app = create_app()

if __name__ == "__main__":
    app.run(debug=app.config["DEBUG"])  # the configuration decides (FLASK_DEBUG does not switch production to debug)
