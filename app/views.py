"""A small JSON surface that shows the database at work (the demo's: rewrite or delete it with the models)."""
from flask import Blueprint, abort, jsonify, request
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from app import db

bp = Blueprint("api", __name__)

MAX_LIMIT = 1000


@bp.get("/health")
def health():
    """Report whether the database answers, and the migration revision it is at."""
    try:
        revision = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        db.session.rollback()
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return jsonify(status="error", database="unreachable or not migrated", error=reason), 503
    return jsonify(status="ok", database="reachable", revision=revision)


@bp.get("/users")
def users():
    """List users, oldest first (?limit=N, at most 1000)."""
    from app.models import User  # here, so that replacing the demo models never breaks start-up

    rows = db.session.scalars(select(User).order_by(User.id).limit(_limit()))
    return jsonify([user.to_dict() for user in rows])


@bp.get("/posts")
def posts():
    """List posts, newest first (?limit=N, at most 1000)."""
    from app.models import Post

    rows = db.session.scalars(select(Post).order_by(Post.created_at.desc(), Post.id.desc()).limit(_limit()))
    return jsonify([post.to_dict() for post in rows])


def _limit():
    """Return the ?limit= of the request (default 100); answer 400 unless it is a whole number from 1 to MAX_LIMIT."""
    raw = request.args.get("limit", "100").strip()
    if not raw.isdecimal() or not 1 <= int(raw) <= MAX_LIMIT:
        abort(400, description=f"limit must be a whole number from 1 to {MAX_LIMIT}, not {raw[:40]!r}.")
    return int(raw)


@bp.errorhandler(SQLAlchemyError)
def database_error(exc):
    """Answer 503 in JSON, with the reason, when the database is missing, unreachable or not migrated."""
    db.session.rollback()
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    if isinstance(exc, OperationalError) and "does not exist" in reason:
        state = "missing (run `python db_manage.py setup` to create it)"
    elif isinstance(exc, OperationalError):
        state = ("unreachable (is the server running? `python db_manage.py server start` starts the embedded one; "
                 "`python db_manage.py status` says more)")
    elif isinstance(exc, ProgrammingError):
        state = "not migrated (run `python db_manage.py upgrade`)"
    else:
        raise exc  # another database error is a bug: let Flask log it and answer 500
    return jsonify(status="error", database=state, error=reason), 503


@bp.app_errorhandler(HTTPException)
def http_error(exc):
    """Answer HTTP errors (400, 404, 405...) in JSON, as the rest of this surface."""
    return jsonify(status="error", error=exc.description, code=exc.code), exc.code
