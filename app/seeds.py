"""The application's seed data, run by `python db_manage.py seed` (in one transaction).

A small sample set, added by natural key: running it again adds only the rows that are
missing and changes none. Large generated sets need no code here: `seed --rows users=1000
--rows posts=100000` fills any model from its columns; OVERRIDES below fixes what it writes.
Rewrite or delete this file with the models: no command depends on it except `seed`.
"""
from datetime import datetime, timedelta, timezone

from app.models import PageView, Post, User
from db_manage_tool.seeding import add_all, ref

T0 = datetime(2025, 1, 6, 9, 30, tzinfo=timezone.utc)
SAMPLE_USERS = [
    {"username": "ada", "email": "ada@example.com", "created_at": T0},
    {"username": "grace", "email": "grace@example.com", "created_at": T0 + timedelta(days=1)},
    {"username": "linus", "email": "linus@example.com", "created_at": T0 + timedelta(days=2)},
]
SAMPLE_POSTS = [
    ("ada", "hello-world", "Hello, world", "First post: the database is up and migrated.", True),
    ("ada", "notes-on-migrations", "Notes on migrations", "Review every generated file before upgrading.", True),
    ("grace", "schemas-are-namespaces", "Schemas are namespaces", "page_views lives in analytics.", True),
    ("grace", "draft-ideas", "Draft ideas", "Not published yet.", False),
    ("linus", "seeding-with-copy", "Seeding with COPY", "Large data sets go in through COPY.", True),
]
SAMPLE_PAGE_VIEWS = [
    {"url": "/", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)", "created_at": T0 + timedelta(hours=h)}
    for h in (1, 2)
] + [
    {"url": f"/posts/{slug}", "user_agent": "curl/8.5.0", "created_at": T0 + timedelta(days=3, hours=i)}
    for i, (_, slug, _, _, _) in enumerate(SAMPLE_POSTS[:4])
]

# What `seed --rows` writes instead of its own choice, per model: a fixed value, or a function of
# the row number. Columns with a server default are otherwise left to the server.
OVERRIDES = {
    Post: {"published": lambda n: n % 10 < 7, "status": lambda n: "published" if n % 10 < 7 else "draft"},
}


def seed(connection):
    """Add the sample users, posts and page views that are missing; return what was added."""
    posts = [{"author_id": ref(User, username=author), "slug": slug, "title": title, "content": content,
              "published": published, "status": "published" if published else "draft",
              "created_at": T0 + timedelta(days=4 + i), "updated_at": T0 + timedelta(days=4 + i)}
             for i, (author, slug, title, content, published) in enumerate(SAMPLE_POSTS)]
    return add_all(connection, {User: SAMPLE_USERS, Post: posts, PageView: SAMPLE_PAGE_VIEWS})
