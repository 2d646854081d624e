"""The log formats: JSON objects with a dated timestamp and the call's context; full numbers
masked by the formatter even where a caller forgot to (an access log's query string)."""

from __future__ import annotations

import json
import logging
from datetime import datetime

import pytest

from api.logs import JsonFormatter, TextFormatter, formatter, mask_numbers
from calls import log_context


@pytest.mark.parametrize(
    ("line", "hidden"),
    [
        ('"GET /api/v1/surveys?number=13812345678 HTTP/1.1" 200', "13812345678"),
        ("GET /api/v1/numbers/check?number=%2B8613812345678", "8613812345678"),
        ("dialling +8613812345678 now", "+8613812345678"),
        ("callee 8613812345678", "8613812345678"),
        ("landline 08334212345 rang", "08334212345"),
    ],
)
def test_full_numbers_left_in_a_line_are_masked(line: str, hidden: str) -> None:
    masked = mask_numbers(line)
    assert (hidden not in masked and masked.endswith(line[-2:])) or hidden[-2:] in masked


@pytest.mark.parametrize(
    "line",
    [
        "call 94b4c13675214313812345678e29ee10",  # an id that happens to hold digits
        "ssrc 3812345678 seq 13812",
        "2026-12-06T13:04:05.123+08:00 took 1234567 us",
        "port 20012, 160 bytes",
    ],
)
def test_other_digits_are_left_alone(line: str) -> None:
    assert mask_numbers(line) == line


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom 13812345678")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("calls.runner", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_json_has_date_offset_level_logger_msg_node_and_the_call_context() -> None:
    call_token = log_context.call_id.set("c0ffee")
    leg_token = log_context.leg.set("unit-2")
    try:
        line = JsonFormatter("node-a").format(_record("dialling %s", "13812345678", exc=True))
    finally:
        log_context.leg.reset(leg_token)
        log_context.call_id.reset(call_token)
    body = json.loads(line)
    assert body["level"] == "WARNING" and body["logger"] == "calls.runner"
    assert body["node"] == "node-a" and body["call_id"] == "c0ffee" and body["leg"] == "unit-2"
    assert datetime.fromisoformat(body["ts"]).utcoffset() is not None
    assert body["msg"] == "dialling 138******78"
    assert "ValueError" in body["exc"] and "13812345678" not in line
    outside = json.loads(JsonFormatter("node-a").format(_record("idle")))
    assert "call_id" not in outside and "leg" not in outside


def test_text_has_the_date_and_the_call() -> None:
    token = log_context.call_id.set("c0ffee")
    try:
        line = TextFormatter().format(_record("hello"))
    finally:
        log_context.call_id.reset(token)
    stamp, level, rest = line.split(" ", 2)
    assert datetime.fromisoformat(stamp).utcoffset() is not None and len(stamp) > 20
    assert level == "WARNING" and rest.strip() == "calls.runner [call=c0ffee]: hello"
    with pytest.raises(ValueError, match="text or json"):
        formatter("xml")
