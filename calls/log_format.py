"""The service's log line formats, text or JSON (LINKCALL_LOG_FORMAT), for every process of a
node: the service (api/logs.py installs them) and its media workers (calls/media_workers).

Text: `2026-12-06T13:04:05.123+08:00 INFO    calls.runner [call=… leg=unit-1]: message`.
JSON: one object per line with `ts` (ISO 8601, date and offset), `level`, `logger`, `msg`,
`node`, and `call_id` and `leg` when the record was made for a call (calls/log_context.py),
`exc` with the traceback when there is one, `process` in a media worker's lines
(`media-worker[PID]`, which text lines carry before the logger's name).

Phone numbers are masked where they are logged (telephony.privacy.mask_number). As a safety
net both formats also mask anything that still looks like a full phone number (E.164, a
mainland mobile, a long-distance landline) in the final line.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime

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

    def __init__(self, node: str = "", process: str = "") -> None:
        super().__init__()
        self.node = node
        self.process = f"{process} " if process else ""

    def format(self, record: logging.LogRecord) -> str:
        context = ""
        call, leg = log_context.call_id.get(), log_context.leg.get()
        if call is not None:
            context = f" [call={call}" + (f" leg={leg}" if leg else "") + "]"
        line = f"{_timestamp(record)} {record.levelname:<7} {self.process}{record.name}{context}: "
        line += record.getMessage()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return mask_numbers(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def __init__(self, node: str = "", process: str = "") -> None:
        super().__init__()
        self.node = node
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_numbers(record.getMessage()),
        }
        if self.node:
            body["node"] = self.node
        if self.process:
            body["process"] = self.process
        call, leg = log_context.call_id.get(), log_context.leg.get()
        if call is not None:
            body["call_id"] = call
        if leg is not None:
            body["leg"] = leg
        if record.exc_info:
            body["exc"] = mask_numbers(self.formatException(record.exc_info))
        return json.dumps(body, ensure_ascii=False)


def formatter(fmt: str = "text", node: str = "", process: str = "") -> logging.Formatter:
    """The formatter for LINKCALL_LOG_FORMAT; `process` names a process other than the
    service's own (`media-worker[PID]`), in each line."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"LINKCALL_LOG_FORMAT must be text or json, got {fmt!r}")
    return JsonFormatter(node, process) if fmt == "json" else TextFormatter(node, process)


WORKER_LOG_ENV = "LINKCALL_WORKER_LOG"
"""How the service tells a media worker process its log level, format and node name."""


@dataclass(frozen=True, slots=True)
class WorkerLog:
    """The service's logging, handed to the processes it starts (its media workers), so their
    lines have the same format, level and node as its own."""

    level: str = "INFO"
    fmt: str = "text"
    node: str = ""

    def encode(self) -> str:
        return json.dumps([self.level, self.fmt, self.node])

    @classmethod
    def decode(cls, text: str | None) -> WorkerLog:
        """The value of WORKER_LOG_ENV; the defaults when it is missing or unreadable."""
        try:
            level, fmt, node = json.loads(text or "")
            return cls(str(level), str(fmt) if fmt in LOG_FORMATS else "text", str(node))
        except (ValueError, TypeError):
            return cls()

    def install(self, process: str) -> None:
        """Log to stderr in this format, each line naming `process` (a child process's whole
        logging set-up)."""
        handler = logging.StreamHandler()
        handler.setFormatter(formatter(self.fmt, self.node, process))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(self.level.upper() if self.level.upper() in _LEVELS else "INFO")


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
