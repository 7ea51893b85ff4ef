FLASK_APP=ledger:create_app
