from flask import jsonify

from storefront import db
from storefront.main import bp
from storefront.models import Product


@bp.route("/products")
def products():
    rows = db.session.scalars(db.select(Product).where(Product.active).order_by(Product.id)).all()
    return jsonify([{"sku": p.sku, "name": p.name, "price": str(p.price)} for p in rows])
