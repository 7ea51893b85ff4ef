"""A blog post, written by a user (the guide's example model)."""
from app import db
from app.models.timestamps import created_at_column, updated_at_column


STATUSES = ("draft", "published", "archived")


class Post(db.Model):
    """A post with a unique slug, published or draft."""

    __tablename__ = "posts"

    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)
    content = db.Column(db.Text, nullable=False)
    slug = db.Column(db.String(200), unique=True, nullable=False)
    published = db.Column(db.Boolean, nullable=False, default=False, server_default=db.false())
    status = db.Column(db.Enum(*STATUSES, name="post_status"), nullable=False, default="draft",
                       server_default="draft")
    created_at = created_at_column()
    updated_at = updated_at_column()
    author_id = db.Column(db.Integer, db.ForeignKey("users.id"), nullable=False, index=True)

    author = db.relationship("User", backref=db.backref("posts", lazy="dynamic"))

    def __repr__(self):
        return f"<Post {self.title}>"

    def to_dict(self):
        """Return the post as JSON-ready data."""
        return {
            "id": self.id,
            "title": self.title,
            "content": self.content,
            "slug": self.slug,
            "published": self.published,
            "status": self.status,
            "author_id": self.author_id,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
