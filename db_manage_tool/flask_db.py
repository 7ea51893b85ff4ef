"""`python -m db_manage_tool.flask_db db ARGS`: Flask's own `flask` command, with failures in one sentence."""
from .errors import install_excepthook
from .revisions import use_first_line_messages

install_excepthook()
use_first_line_messages()

if __name__ == "__main__":
    from flask.cli import cli

    cli.main(prog_name="flask")
