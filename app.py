"""Wiring only: the Chalice app, its blueprints, middleware and queue-triggered handlers."""

from chalice.app import Chalice

from chalicelib.api import apps, credentials, users  # noqa: F401  (registers their routes)
from chalicelib.api import blueprint as api_blueprint
from chalicelib.api.docs import docs_blueprint
from chalicelib.api.routing import conform_chalice_errors
from chalicelib.observability import configure_logging
from chalicelib.settings import get_settings

configure_logging(get_settings())
app = Chalice(app_name="apns-push")
app.register_blueprint(api_blueprint)
app.register_blueprint(docs_blueprint)
app.register_middleware(conform_chalice_errors, "http")
