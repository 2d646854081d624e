"""Logging set-up for the service: one line per record, with the logger name."""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, unquote_plus

from telephony.privacy import mask_number


def configure_logging(level: str = "INFO") -> None:
    """Configure the root logger once (idempotent)."""
    root = logging.getLogger()
    if getattr(root, "_linkcall_configured", False):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root.addHandler(handler)
    root.setLevel(level.upper())
    root._linkcall_configured = True  # type: ignore[attr-defined]


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
