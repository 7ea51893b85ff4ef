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


def test_a_limit_that_is_not_a_whole_number_in_range_is_a_json_400(app):
    client = app.test_client()
    for bad in ("abc", "0", "-3", "1001", "1.5", ""):
        response = client.get(f"/users?limit={bad}")
        assert response.status_code == 400, bad
        assert response.get_json()["status"] == "error" and "limit must be a whole number" in response.get_json()["error"]
    assert client.get("/posts?limit=1000").status_code == 200


def test_a_missing_database_is_a_json_503_with_the_reason(missing_database_url):
    from app import create_app

    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": missing_database_url})
    response = app.test_client().get("/users")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "error" and "does not exist" in body["error"] and "setup" in body["database"]


def test_a_server_that_does_not_answer_is_a_json_503_that_says_to_start_it(database_url):
    from sqlalchemy.engine import make_url

    from app import create_app

    closed = make_url(database_url).set(host="127.0.0.1", port=1, query={}).render_as_string(hide_password=False)
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": closed})
    response = app.test_client().get("/posts")
    assert response.status_code == 503
    body = response.get_json()
    assert "server start" in body["database"] and "setup" not in body["database"], body


def test_a_database_not_migrated_is_a_json_503(app):
    with app.app_context():
        db.session.execute(db.text("DROP TABLE posts"))
        db.session.commit()
    response = app.test_client().get("/posts")
    assert response.status_code == 503 and "upgrade" in response.get_json()["database"]


def test_unknown_paths_are_json_and_debug_is_only_for_development(app, database_url):
    from app import create_app

    response = app.test_client().get("/nope")
    assert response.status_code == 404 and response.get_json()["status"] == "error"
    production = create_app("production", {"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "k" * 32})
    development = create_app("development", {"SQLALCHEMY_DATABASE_URI": database_url})
    assert production.debug is False and development.debug is True
