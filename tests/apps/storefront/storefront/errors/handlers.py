from flask import jsonify

from storefront import db
from storefront.errors import bp


@bp.app_errorhandler(404)
def not_found_error(error):
    return jsonify(error="not found"), 404


@bp.app_errorhandler(500)
def internal_error(error):
    db.session.rollback()
    return jsonify(error="internal server error"), 500
