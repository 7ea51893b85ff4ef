import sqlalchemy as sa

from storefront import db


class Customer(db.Model):
    __tablename__ = "customers"

    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(120), nullable=False)
    name = db.Column(db.String(64))
    created_at = db.Column(db.DateTime, server_default=db.func.now())

    orders = db.relationship("Order", backref="customer", lazy="dynamic")

    def __repr__(self):
        return f"<Customer {self.email}>"


# One account per e-mail address, whatever its case.
db.Index("uq_customers_email_lower", db.func.lower(Customer.email), unique=True)


class Product(db.Model):
    __tablename__ = "products"
    __table_args__ = (
        db.CheckConstraint("price >= 0"),
        db.Index("ix_products_sku", "sku"),
    )

    id = db.Column(db.Integer, primary_key=True)
    sku = db.Column(db.String(32), unique=True)
    name = db.Column(db.String(80))
    price = db.Column(db.Numeric(10, 2))
    active = db.Column(db.Boolean, nullable=False, server_default=sa.true())

    def __repr__(self):
        return f"<Product {self.sku}>"


class Order(db.Model):
    __tablename__ = "orders"

    id = db.Column(db.Integer, primary_key=True)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers.id"))
    placed_at = db.Column(db.DateTime)

    def __repr__(self):
        return f"<Order {self.id}>"
