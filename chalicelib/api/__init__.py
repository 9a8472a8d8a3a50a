"""HTTP API: one blueprint per resource, all routes declared through ``routing.Router``."""

from chalice.app import Blueprint

from chalicelib.api.routing import Router
from chalicelib.deps import services

blueprint = Blueprint(__name__)
router = Router(blueprint, lambda: services().authenticate)
