"""Logging set-up: levels from Settings, and AWS SDK wire logs kept quiet.

botocore's DEBUG logs print request bodies, and a CreateSecret body *is* the
secret: its loggers are pinned to WARNING whatever LOG_LEVEL says.
"""

from __future__ import annotations

import logging

from chalicelib.settings import Settings

_CHATTY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "hpack", "h2", "aioapns.connection")


def configure_logging(settings: Settings) -> None:
    logging.getLogger("chalicelib").setLevel(settings.log_level)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
