"""A contest application for the seed tests, its model shapes taken from real public Flask applications.

From CTFd: users and teams with a nullable unique integer oauth_id, single-table inheritance
(users.type: user/admin), joined-table inheritance three levels deep (challenges ->
dynamic_challenge -> timed_challenge, the discriminator in the base), solves unique per
(challenge, user) and awards. From zou: primary keys drawn from an explicit Sequence, a
numeric unique rank, an association table. From FitTrackee: a role CHECK over a small integer
range and an IN list, an identity key, a self-reference, a pair unique per parent and day, and
CHECKs that order two columns. No seed file, no naming convention.
"""
import uuid

import sqlalchemy as sa
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.dialects import postgresql

db = SQLAlchemy()
migrate = Migrate()

TEAM_IDS = sa.Sequence("teams_id_seq")
CHALLENGE_IDS = sa.Sequence("challenges_id_seq")


class Team(db.Model):
    """A team: its key from an explicit Sequence, a unique nullable oauth_id, a unique numeric rank."""

    __tablename__ = "teams"
    id = sa.Column(sa.Integer, TEAM_IDS, primary_key=True)
    oauth_id = sa.Column(sa.Integer, unique=True)
    name = sa.Column(sa.String(128), nullable=False, unique=True)
    rank = sa.Column(sa.Numeric(8, 0), unique=True)
    captain_id = sa.Column(sa.Integer, sa.ForeignKey("users.id", use_alter=True, ondelete="SET NULL"))


class User(db.Model):
    """A user (single-table inheritance on type), with a role the CHECKs bound."""

    __tablename__ = "users"
    __table_args__ = (sa.CheckConstraint("role >= 1 AND role <= 4", name="ck_users_role"),
                      sa.CheckConstraint("status IN ('active', 'banned', 'hidden')", name="ck_users_status"))
    id = sa.Column(sa.Integer, primary_key=True)
    oauth_id = sa.Column(sa.Integer, unique=True)
    name = sa.Column(sa.String(128), nullable=False)
    email = sa.Column(sa.String(128), nullable=False, unique=True)
    type = sa.Column(sa.String(80), nullable=False)
    role = sa.Column(sa.SmallInteger, nullable=False)
    status = sa.Column(sa.String(10), nullable=False)
    team_id = sa.Column(sa.Integer, sa.ForeignKey("teams.id"))
    __mapper_args__ = {"polymorphic_on": type, "polymorphic_identity": "user"}


class Admin(User):
    """An administrator: a user row of type admin."""

    __mapper_args__ = {"polymorphic_identity": "admin"}


class Challenge(db.Model):
    """A challenge: the base of a joined-table inheritance tree, its key from an explicit Sequence."""

    __tablename__ = "challenges"
    id = sa.Column(sa.Integer, CHALLENGE_IDS, primary_key=True)
    name = sa.Column(sa.String(80), nullable=False)
    value = sa.Column(sa.Integer, nullable=False)
    state = sa.Column(sa.String(80), sa.CheckConstraint("state IN ('visible', 'hidden')"), nullable=False)
    type = sa.Column(sa.String(80), nullable=False)
    __mapper_args__ = {"polymorphic_on": type, "polymorphic_identity": "standard"}


class DynamicChallenge(Challenge):
    """A challenge whose value decays: its own table shares the challenge's key."""

    __tablename__ = "dynamic_challenge"
    id = sa.Column(sa.Integer, sa.ForeignKey("challenges.id", ondelete="CASCADE"), primary_key=True)
    initial = sa.Column(sa.Integer, nullable=False)
    minimum = sa.Column(sa.Integer, nullable=False)
    decay = sa.Column(sa.Integer, nullable=False)
    __mapper_args__ = {"polymorphic_identity": "dynamic"}


class TimedChallenge(DynamicChallenge):
    """A dynamic challenge with a deadline: a third table in the chain."""

    __tablename__ = "timed_challenge"
    id = sa.Column(sa.Integer, sa.ForeignKey("dynamic_challenge.id", ondelete="CASCADE"), primary_key=True)
    deadline = sa.Column(sa.DateTime(timezone=True), nullable=False)
    __mapper_args__ = {"polymorphic_identity": "timed"}


challenge_tags = sa.Table(
    "challenge_tags", db.metadata,
    sa.Column("challenge_id", sa.ForeignKey("challenges.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag_id", sa.ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
)


class Tag(db.Model):
    """A tag; its key an identity column."""

    __tablename__ = "tags"
    id = sa.Column(sa.Integer, sa.Identity(), primary_key=True)
    value = sa.Column(sa.String(80), nullable=False, unique=True)


class Solve(db.Model):
    """A challenge solved by a user, or by a team: once per pair of each (CTFd's two unique pairs)."""

    __tablename__ = "solves"
    __table_args__ = (sa.UniqueConstraint("challenge_id", "user_id"), sa.UniqueConstraint("challenge_id", "team_id"))
    id = sa.Column(sa.Integer, primary_key=True)
    challenge_id = sa.Column(sa.Integer, sa.ForeignKey("challenges.id", ondelete="CASCADE"), nullable=False)
    user_id = sa.Column(sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    team_id = sa.Column(sa.Integer, sa.ForeignKey("teams.id", ondelete="CASCADE"))
    date = sa.Column(sa.DateTime, nullable=False)


class Page(db.Model):
    """A page, inside another one or at the top, with a unique route and a unique order."""

    __tablename__ = "pages"
    id = sa.Column(sa.Integer, primary_key=True)
    route = sa.Column(sa.String(128), nullable=False, unique=True)
    position = sa.Column(sa.BigInteger, nullable=False, unique=True)
    parent_id = sa.Column(sa.Integer, sa.ForeignKey("pages.id"))
    content = sa.Column(sa.Text)


class Token(db.Model):
    """An API token: a nullable unique text value; one live token per user (zou's partial unique index)."""

    __tablename__ = "tokens"
    id = sa.Column(sa.Integer, primary_key=True)
    user_id = sa.Column(sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    value = sa.Column(sa.String(128), unique=True)
    expiration = sa.Column(sa.DateTime)


sa.Index("uq_tokens_live", Token.user_id, unique=True, postgresql_where=Token.expiration.is_(None))


class Tracking(db.Model):
    """A visit (CTFd's tracking): polymorphic on type, with no identity and no subclass."""

    __tablename__ = "tracking"
    id = sa.Column(sa.Integer, primary_key=True)
    type = sa.Column(sa.String(32))
    ip = sa.Column(sa.String(46))
    user_id = sa.Column(sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"))
    __mapper_args__ = {"polymorphic_on": type}


class UUIDType(sa.types.TypeDecorator):
    """sqlalchemy_utils' UUIDType, as zou keys every table with it: BINARY(16) declared, uuid on PostgreSQL."""

    impl = sa.types.BINARY(16)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        """Store a native uuid on PostgreSQL."""
        return dialect.type_descriptor(postgresql.UUID()) if dialect.name == "postgresql" else self.impl


class Event(db.Model):
    """An event of a team: zou's UUIDType key with a Python default, ordered dates and times, unique per team and day."""

    __tablename__ = "events"
    __table_args__ = (sa.CheckConstraint("starts_on <= ends_on", name="ck_events_days"),
                      sa.CheckConstraint("opens_at < closes_at", name="ck_events_hours"),
                      sa.UniqueConstraint("team_id", "starts_on"))
    id = sa.Column(UUIDType(), primary_key=True, default=uuid.uuid4)
    team_id = sa.Column(sa.Integer, sa.ForeignKey("teams.id"), nullable=False)
    starts_on = sa.Column(sa.Date, nullable=False)
    ends_on = sa.Column(sa.Date, nullable=False)
    opens_at = sa.Column(sa.DateTime(timezone=True), nullable=False)
    closes_at = sa.Column(sa.DateTime(timezone=True), nullable=False)
    seats = sa.Column(sa.Integer)
    capacity = sa.Column(sa.Integer, sa.CheckConstraint("seats <= capacity"))


def create_app():
    """Make the arena application, on DATABASE_URL."""
    import os

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    db.init_app(app)
    migrate.init_app(app, db)
    return app
