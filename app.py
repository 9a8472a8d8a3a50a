"""Wiring only: the Chalice app, its blueprints, middleware and queue-triggered handlers."""

import sys
from typing import Any

from chalice.app import Chalice, CloudWatchEvent, Rate, SQSEvent

from chalicelib import handlers
from chalicelib.api import apps, credentials, insight, messages, users  # noqa: F401  (registers their routes)
from chalicelib.api import blueprint as api_blueprint
from chalicelib.api.console import console_blueprint
from chalicelib.api.docs import docs_blueprint
from chalicelib.api.gateway import emulate_locally
from chalicelib.api.routing import conform_chalice_errors
from chalicelib.observability import configure_logging
from chalicelib.settings import get_settings
from chalicelib.store.retry import invocation

settings = get_settings()
configure_logging(settings)
app = Chalice(app_name="apns-push")
app.register_blueprint(api_blueprint)
app.register_blueprint(docs_blueprint)
app.register_blueprint(console_blueprint)
app.register_middleware(conform_chalice_errors, "http")
if "chalice.local" in sys.modules:  # `chalice local` or chalice's test client, never Lambda
    emulate_locally()  # answer what the deployed stage's gateway responses answer


@app.on_sqs_message(queue=settings.intake_queue_name, batch_size=10, maximum_batching_window_in_seconds=1)
def fan_out(event: SQSEvent) -> dict[str, Any]:
    with invocation(event.context):  # AWS calls stop retrying before the function's timeout
        return handlers.handle_intake_records(event.to_dict()["Records"])


@app.on_sqs_message(queue=settings.send_queue_name, batch_size=10, maximum_batching_window_in_seconds=1)
def send(event: SQSEvent) -> dict[str, Any]:
    with invocation(event.context):
        return handlers.handle_send_records(event.to_dict()["Records"])


@app.schedule(Rate(1, unit=Rate.DAYS))
def report_expiring_credentials(event: CloudWatchEvent) -> int:
    return handlers.report_expiring_credentials()
