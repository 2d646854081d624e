"""Logging set-up for the service: one line per record on stderr, as text or JSON (the formats
are in calls/log_format.py, shared with the media workers), and the access log's masking.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, unquote_plus

from calls.log_format import (
    LOG_FORMATS,
    JsonFormatter,
    TextFormatter,
    formatter,
    mask_numbers,
)
from telephony.privacy import mask_number

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "MaskNumbersFilter",
    "TextFormatter",
    "configure_logging",
    "formatter",
    "install_access_log_masking",
    "mask_numbers",
]


def configure_logging(level: str = "INFO", fmt: str = "text", node: str = "") -> None:
    """Configure the root logger once (idempotent: a second call sets level and format)."""
    root = logging.getLogger()
    handler: logging.Handler | None = getattr(root, "_linkcall_handler", None)
    if handler is None:
        handler = logging.StreamHandler()
        root.addHandler(handler)
        root._linkcall_handler = handler  # type: ignore[attr-defined]
    handler.setFormatter(formatter(fmt, node))
    root.setLevel(level.upper())


_NUMBER_PARAM = re.compile(r"([?&]number=)([^&\s\"]*)")


def _mask_params(text: str) -> str:
    return _NUMBER_PARAM.sub(lambda m: m[1] + quote(mask_number(unquote_plus(m[2]))), text)


class MaskNumbersFilter(logging.Filter):
    """Masks the `number=` query parameter (GET /api/v1/calls?number=…) in access log lines:
    a searched phone number never reaches the log unmasked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _mask_params(a) if isinstance(a, str) and "number=" in a else a for a in record.args
            )
        if isinstance(record.msg, str) and "number=" in record.msg:
            record.msg = _mask_params(record.msg)
        return True


def install_access_log_masking() -> None:
    """Put MaskNumbersFilter on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, MaskNumbersFilter) for f in access.filters):
        access.addFilter(MaskNumbersFilter())
