"""A small JSON surface that shows the database at work (the demo's: rewrite or delete it with the models)."""
from flask import Blueprint, jsonify, request
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

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
    """Return the ?limit= of the request, between 1 and MAX_LIMIT (default 100)."""
    return max(1, min(request.args.get("limit", 100, type=int), MAX_LIMIT))
