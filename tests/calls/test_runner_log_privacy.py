"""A request the flow refuses after its requester stopped waiting (the API's 10 s timeout) is
logged by the runner; the log line names the request, never the numbers it carries (an added
unit's dial list: a landline with its extension, an extension the formatter cannot tell from
other digits)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import cast

import pytest

from callflows.bridge import BridgeFlow
from callflows.destination import Destination
from callflows.events import AddParty, EndBridge, Role
from calls.media_workers.surface import Media
from calls.runner import FlowRunner
from telephony.sip.ua import UserAgent

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


async def test_a_refused_request_is_logged_without_its_numbers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = BridgeFlow(
        "b1", {Role.CALLER: ["+8613912345601"], Role.DISPATCHER: ["8417"], Role.UNIT: ["8003"]}, T0
    )
    flow.start(T0)
    flow.handle(EndBridge(), T0)  # over: any further request is refused
    runner = FlowRunner(flow, ua=cast(UserAgent, None), media=cast(Media, None))
    late = AddParty((Destination("+8657187654321", "8417"), "13700000486"))
    with caplog.at_level(logging.ERROR, logger="calls.runner"):
        await runner._handle(late, None)  # the requester gave up: no future
    (record,) = caplog.records
    line = record.getMessage()
    assert "b1" in line and "AddParty" in line, line
    for digits in ("87654321", "8417", "13700000486"):
        assert digits not in line, line
