"""The application entry point: FLASK_APP for `flask db ...`, and `python run.py` serves it."""
from app import create_app
from app.errors import install_excepthook

install_excepthook()
app = create_app()

if __name__ == "__main__":
    app.run()
