"""Timezone-aware timestamp columns shared by the models."""
from datetime import datetime, timezone

from app import db


def utcnow():
    """Return the current time in UTC, timezone-aware (datetime.utcnow is deprecated)."""
    return datetime.now(timezone.utc)


def created_at_column():
    """A creation time, set by Python on insert and by the database for rows loaded in bulk."""
    return db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow, server_default=db.func.now())


def updated_at_column():
    """A modification time, refreshed by Python on every ORM update."""
    return db.Column(
        db.DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow, server_default=db.func.now()
    )
