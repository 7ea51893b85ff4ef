"""A page view, kept apart in the analytics schema."""
from app import db
from app.models.timestamps import created_at_column


class PageView(db.Model):
    """One visit of one URL."""

    __tablename__ = "page_views"
    __table_args__ = {"schema": "analytics"}

    id = db.Column(db.Integer, primary_key=True)
    url = db.Column(db.String(500), nullable=False)
    user_agent = db.Column(db.String(500))
    created_at = created_at_column()

    def __repr__(self):
        return f"<PageView {self.url}>"

    def to_dict(self):
        """Return the page view as JSON-ready data."""
        return {"id": self.id, "url": self.url, "user_agent": self.user_agent, "created_at": self.created_at.isoformat()}
