"""A catalog application for the seed tests: every kind of column and constraint `seed --rows` must fill.

A UUID key with only a Python default, JSONB, ARRAY, a Python enum, a self-reference, an
association table, a composite unique constraint, CHECK constraints with a range, an IN list and
a length, a varchar(8) unique column, numeric, date, time, interval and timestamps; no naming
convention and no seed file.
"""
import enum
import uuid

import sqlalchemy as sa
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

db = SQLAlchemy()
migrate = Migrate()


class Condition(enum.Enum):
    """How used a product is."""

    new = "new"
    used = "used"
    refurbished = "refurbished"


class Category(db.Model):
    """A category, inside another one or at the top."""

    __tablename__ = "categories"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(60), nullable=False, unique=True)
    parent_id = sa.Column(sa.Integer, sa.ForeignKey("categories.id"))


class Vendor(db.Model):
    """A vendor, keyed by a UUID the application makes."""

    __tablename__ = "vendors"
    id = sa.Column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    name = sa.Column(sa.String(120), nullable=False)
    email = sa.Column(sa.String(120), nullable=False, unique=True)
    code = sa.Column(sa.String(8), nullable=False, unique=True)
    country_code = sa.Column(sa.String(2), nullable=False)
    phone = sa.Column(sa.String(30))
    settings = sa.Column(JSONB, nullable=False)


product_tags = sa.Table(
    "product_tags", db.metadata,
    sa.Column("product_id", sa.ForeignKey("products.id"), primary_key=True),
    sa.Column("tag_id", sa.ForeignKey("tags.id"), primary_key=True),
)


class Tag(db.Model):
    """A label for products."""

    __tablename__ = "tags"
    id = sa.Column(sa.Integer, primary_key=True)
    label = sa.Column(sa.String(30), nullable=False, unique=True)


class Product(db.Model):
    """A product of a vendor."""

    __tablename__ = "products"
    __table_args__ = (
        sa.UniqueConstraint("vendor_id", "sku", name="uq_products_vendor_sku"),
        sa.CheckConstraint("price >= 0 AND price <= 10000", name="ck_products_price_range"),
        sa.CheckConstraint("size IN ('S', 'M', 'L', 'XL')", name="ck_products_size_list"),
        sa.CheckConstraint("char_length(sku) >= 4", name="ck_products_sku_length"),
        sa.CheckConstraint("stock BETWEEN 0 AND 500", name="ck_products_stock"),
    )
    id = sa.Column(sa.Integer, primary_key=True)
    vendor_id = sa.Column(sa.Uuid, sa.ForeignKey("vendors.id"), nullable=False)
    category_id = sa.Column(sa.Integer, sa.ForeignKey("categories.id"))
    sku = sa.Column(sa.String(20), nullable=False)
    title = sa.Column(sa.String(200), nullable=False)
    description = sa.Column(sa.Text)
    price = sa.Column(sa.Numeric(10, 2), nullable=False)
    size = sa.Column(sa.String(4), nullable=False)
    condition = sa.Column(sa.Enum(Condition, name="product_condition"), nullable=False)
    keywords = sa.Column(ARRAY(sa.String(30)))
    attributes = sa.Column(JSONB)
    released_on = sa.Column(sa.Date, nullable=False)
    opens_at = sa.Column(sa.Time)
    warranty = sa.Column(sa.Interval)
    stock = sa.Column(sa.Integer, nullable=False)
    rating = sa.Column(sa.Float)
    active = sa.Column(sa.Boolean, nullable=False)
    created_at = sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    updated_at = sa.Column(sa.DateTime(timezone=True))


class Event(db.Model):
    """A sale, whose window seed --rows cannot guess: OVERRIDES must give it."""

    __tablename__ = "events"
    __table_args__ = (sa.CheckConstraint("starts_at < ends_at AND ends_at - starts_at <= interval '7 days'",
                                          name="ck_events_window"),)
    id = sa.Column(sa.Integer, primary_key=True)
    title = sa.Column(sa.String(80), nullable=False)
    starts_at = sa.Column(sa.DateTime(timezone=True), nullable=False)
    ends_at = sa.Column(sa.DateTime(timezone=True), nullable=False)


class Visit(db.Model):
    """A visit: every column is the server's."""

    __tablename__ = "visits"
    id = sa.Column(sa.Integer, primary_key=True)
    at = sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


class Account(db.Model):
    """An account; admins are accounts too (single-table inheritance on `kind`)."""

    __tablename__ = "accounts"
    id = sa.Column(sa.Integer, primary_key=True)
    kind = sa.Column(sa.String(20), nullable=False)
    __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "account"}


class Admin(Account):
    """An account that administers."""

    __mapper_args__ = {"polymorphic_identity": "admin"}


class Team(db.Model):
    """A team, whose captain is one of its players (a cycle of foreign keys)."""

    __tablename__ = "teams"
    id = sa.Column(sa.Integer, primary_key=True)
    captain_id = sa.Column(sa.Integer, sa.ForeignKey("players.id", use_alter=True, name="fk_teams_captain"))


class Player(db.Model):
    """A player of a team."""

    __tablename__ = "players"
    id = sa.Column(sa.Integer, primary_key=True)
    team_id = sa.Column(sa.Integer, sa.ForeignKey("teams.id"), nullable=False)


class Membership(db.Model):
    """A tag or a vendor in a team: two unique pairs that share team_id."""

    __tablename__ = "memberships"
    __table_args__ = (sa.UniqueConstraint("team_id", "vendor_id"), sa.UniqueConstraint("team_id", "tag_id"))
    id = sa.Column(sa.Integer, primary_key=True)
    team_id = sa.Column(sa.Integer, sa.ForeignKey("teams.id"), nullable=False)
    vendor_id = sa.Column(sa.Uuid, sa.ForeignKey("vendors.id"))
    tag_id = sa.Column(sa.Integer, sa.ForeignKey("tags.id"))


def create_app():
    """Create the catalog application on DATABASE_URL."""
    import os

    app = Flask(__name__)
    url = os.environ["DATABASE_URL"]
    app.config["SQLALCHEMY_DATABASE_URI"] = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    db.init_app(app)
    migrate.init_app(app, db)
    return app
