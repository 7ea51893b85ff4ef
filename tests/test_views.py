"""The JSON surface of run.py, on a migrated database."""
from app import db
from app.models import PageView, Post, User


def test_health_reports_the_revision(app, head_revision):
    response = app.test_client().get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "reachable", "revision": head_revision}


def test_health_when_not_migrated(app):
    with app.app_context():
        db.session.execute(db.text("DROP TABLE alembic_version"))
        db.session.commit()
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert response.get_json()["status"] == "error"


def test_users_and_posts_as_json(app):
    with app.app_context():
        ada = User(username="ada", email="ada@example.com")
        db.session.add_all([ada, Post(title="Hello", content="First", slug="hello", author=ada),
                            PageView(url="/hello")])
        db.session.commit()
        post_created = db.session.scalar(db.select(Post.created_at))
    client = app.test_client()
    users = client.get("/users").get_json()
    assert [u["username"] for u in users] == ["ada"]
    posts = client.get("/posts?limit=5").get_json()
    assert posts[0]["slug"] == "hello" and posts[0]["author_id"] == users[0]["id"]
    assert posts[0]["published"] is False
    assert posts[0]["created_at"] == post_created.isoformat()
    assert post_created.tzinfo is not None
