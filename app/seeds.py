"""The application's seed data, run by `python db_manage.py seed` (in one transaction).

A small sample set, completed by natural key (idempotent), and a large generated set of users
and posts (`seed --users N --posts M`) streamed through COPY. Rewrite or delete this file
with the models: no command depends on it except `seed`.
"""
import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from app.models import PageView, Post, User
from db_manage_tool.seeding import copy_rows, progress_bar

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
GENERATED_DOMAIN = "example.org"  # generated users' e-mails; the sample's use example.com
FIRST = ("alice bob carol dave erin frank gina hugo iris jack kate liam mona nils olga paul quinn rosa sam tina "
         "umar vera walt xena yuri zoe").split()
LAST = ("smith jones garcia miller davis lopez wilson moore taylor thomas white harris martin clark lewis young "
        "walker hall allen king wright scott green baker adams nelson").split()
WORDS = ("database schema migration index query table column row server cache request deploy release feature "
         "bug test model view route token session backup replica lock transaction commit rollback").split()
# The columns in the order user_lines and post_lines write them.
USER_COLUMNS = ("username", "email", "created_at")
POST_COLUMNS = ("title", "content", "slug", "published", "status", "created_at", "updated_at", "author_id")
SPAN = timedelta(days=730)  # generated timestamps spread over the two years before T0


def seed(connection, users=0, posts=0):
    """Add the sample data set, then users and posts generated on top; return what was added."""
    added = seed_sample(connection)
    if users or posts:
        added.update(seed_generated(connection, users, posts))
    return added


def seed_sample(connection):
    """Insert the sample rows whose natural keys are missing; change no existing row."""
    new_users = connection.execute(
        insert(User).values(SAMPLE_USERS).on_conflict_do_nothing().returning(User.id)).all()
    ids = dict(connection.execute(select(User.username, User.id).where(
        User.username.in_([u["username"] for u in SAMPLE_USERS]))).all())
    rows = [{"author_id": ids[author], "slug": slug, "title": title, "content": content, "published": published,
             "status": "published" if published else "draft",
             "created_at": T0 + timedelta(days=4 + i), "updated_at": T0 + timedelta(days=4 + i)}
            for i, (author, slug, title, content, published) in enumerate(SAMPLE_POSTS) if author in ids]
    new_posts = connection.execute(
        insert(Post).values(rows).on_conflict_do_nothing(index_elements=["slug"]).returning(Post.id)).all()
    existing = set(connection.execute(select(PageView.url, PageView.created_at).where(
        PageView.url.in_([v["url"] for v in SAMPLE_PAGE_VIEWS]))).all())
    views = [v for v in SAMPLE_PAGE_VIEWS if (v["url"], v["created_at"]) not in existing]
    if views:
        connection.execute(insert(PageView).values(views))
    return {"sample users": len(new_users), "sample posts": len(new_posts), "sample page views": len(views)}


def seed_generated(connection, users, posts):
    """COPY users then posts, generated deterministically from their position, spread over all users."""
    user_start = connection.execute(select(func.count()).where(User.email.like(f"%@{GENERATED_DOMAIN}"))).scalar()
    post_start = connection.execute(select(func.count()).select_from(Post)).scalar()
    with progress_bar(users + posts) as bar:
        copy_rows(connection, User.__table__, USER_COLUMNS, user_lines(user_start, users), bar)
        if posts:
            author_ids = connection.execute(select(User.id).order_by(User.id)).scalars().all()
            copy_rows(connection, Post.__table__, POST_COLUMNS, post_lines(post_start, posts, author_ids), bar)
    return {"generated users": users, "generated posts": posts}


def user_lines(start, count):
    """Yield COPY text lines for users number start to start+count-1 (same numbers, same rows)."""
    rng = random.Random(f"users:{start}")
    for i in range(start, start + count):
        name = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{i}"
        created = T0 - SPAN * rng.random()
        yield f"{name}\t{name}@{GENERATED_DOMAIN}\t{created.isoformat()}\n"


def post_lines(start, count, author_ids):
    """Yield COPY text lines for posts number start to start+count-1, authors drawn from author_ids."""
    rng = random.Random(f"posts:{start}:{len(author_ids)}")
    sentences = [" ".join(rng.choices(WORDS, k=rng.randint(6, 14))).capitalize() + "." for _ in range(256)]
    for i in range(start, start + count):
        first, second = rng.choice(WORDS), rng.choice(WORDS)
        content = " ".join(rng.choices(sentences, k=rng.randint(2, 6)))
        created = T0 - SPAN * rng.random()
        updated = created + timedelta(hours=rng.randint(0, 240))
        published = rng.random() < 0.7
        yield (f"{first.capitalize()} and {second}, part {i}\t{content}\t{first}-{second}-{i}\t{'tf'[not published]}\t"
               f"{'published' if published else 'draft'}\t{created.isoformat()}\t{updated.isoformat()}\t"
               f"{rng.choice(author_ids)}\n")
