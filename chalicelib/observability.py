"""Logging set-up: levels from Settings, and AWS SDK wire logs kept quiet.

botocore's DEBUG logs print request bodies, and a CreateSecret body *is* the
secret: its loggers are pinned to WARNING whatever LOG_LEVEL says.
"""

from __future__ import annotations

import logging
import os

from chalicelib.settings import Settings

_CHATTY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "hpack", "h2", "aioapns.connection")


def configure_logging(settings: Settings) -> None:
    """Structured JSON lines (Powertools' formatter): level, message, timestamp, service, and the
    ``extra`` keys each call adds (appId, messageId, chunk, counts...), ready for Logs Insights."""
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    logging.getLogger("chalicelib").setLevel(settings.log_level)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    formatter = LambdaPowertoolsFormatter(service="apns-push")
    if not root.handlers:  # chalice local, the poller: nobody configured logging yet
        root.addHandler(logging.StreamHandler())
        root.setLevel(logging.INFO)
        for handler in root.handlers:
            handler.setFormatter(formatter)
    elif os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # Lambda's own handler: make its lines JSON
        for handler in root.handlers:
            handler.setFormatter(formatter)


def emit_metrics(counts: dict[tuple[str, str], int], latencies_ms: list[float], namespace: str) -> None:
    """CloudWatch Embedded Metric Format: Sent, Skipped/Failed by Reason, ApnsLatency.

    One EMF document per (metric, reason) pair so each reason is its own dimension value.
    """
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    for (name, reason), count in sorted(counts.items()):
        if count < 0:
            continue
        with single_metric(name=name, unit=MetricUnit.Count, value=count, namespace=namespace) as metric:
            if reason:
                metric.add_dimension(name="Reason", value=reason)
    if latencies_ms:
        from aws_lambda_powertools import Metrics

        latency = Metrics(namespace=namespace)
        for ms in latencies_ms:  # Powertools flushes every 100 values of one metric by itself
            latency.add_metric(name="ApnsLatency", unit=MetricUnit.Milliseconds, value=round(ms, 2))
        latency.flush_metrics()
