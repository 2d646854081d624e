"""Logging set-up for the service: one line per record on stderr, as text or JSON.

Text: `2026-12-06T13:04:05.123+08:00 INFO    calls.runner [call=… leg=unit-1]: message`.
JSON (LINKCALL_LOG_FORMAT=json): one object per line with `ts` (ISO 8601, date and offset),
`level`, `logger`, `msg`, `node`, and `call_id` and `leg` when the record was made for a call
(calls/log_context.py), `exc` with the traceback when there is one.

Phone numbers are masked where they are logged (telephony.privacy.mask_number). As a safety
net both formats also mask anything that still looks like a full phone number (E.164, a
mainland mobile, a long-distance landline) in the final line.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from urllib.parse import quote, unquote_plus

from calls import log_context
from telephony.privacy import mask_number

LOG_FORMATS = ("text", "json")

# full numbers only: +E.164 (also URL-encoded, %2B), a mainland mobile (1[3-9] + 9 digits,
# optionally with 86 before it), 0 + area code + number; not touching other digits or letters
_NUMBER = re.compile(
    r"((?:\+|%2[Bb])\d{7,15}(?!\d)"
    r"|(?<![\dA-Za-z.])(?:86)?1[3-9]\d{9}(?!\d)"
    r"|(?<![\dA-Za-z.])0[1-9]\d{8,10}(?!\d))"
)


def mask_numbers(text: str) -> str:
    """Mask every full phone number left in a log line."""
    return _NUMBER.sub(lambda m: mask_number(m.group(1)), text)


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """Date, time and offset; level; logger; the call and leg when known; the message."""

    def __init__(self, node: str = "") -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        context = ""
        call, leg = log_context.call_id.get(), log_context.leg.get()
        if call is not None:
            context = f" [call={call}" + (f" leg={leg}" if leg else "") + "]"
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}{context}: "
        line += record.getMessage()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return mask_numbers(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def __init__(self, node: str = "") -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_numbers(record.getMessage()),
        }
        if self.node:
            body["node"] = self.node
        call, leg = log_context.call_id.get(), log_context.leg.get()
        if call is not None:
            body["call_id"] = call
        if leg is not None:
            body["leg"] = leg
        if record.exc_info:
            body["exc"] = mask_numbers(self.formatException(record.exc_info))
        return json.dumps(body, ensure_ascii=False)


def formatter(fmt: str = "text", node: str = "") -> logging.Formatter:
    """The formatter for LINKCALL_LOG_FORMAT."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"LINKCALL_LOG_FORMAT must be text or json, got {fmt!r}")
    return JsonFormatter(node) if fmt == "json" else TextFormatter(node)


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
