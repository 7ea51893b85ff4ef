"""A registered user."""
from app import db
from app.models.timestamps import created_at_column


class User(db.Model):
    """A person who writes posts."""

    __tablename__ = "users"

    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(80), unique=True, nullable=False)
    email = db.Column(db.String(120), unique=True, nullable=False)
    created_at = created_at_column()

    def __repr__(self):
        return f"<User {self.username}>"

    def to_dict(self):
        """Return the user as JSON-ready data."""
        return {
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "created_at": self.created_at.isoformat(),
        }
