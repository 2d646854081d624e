"""An API request that fails in the database (here a real SQLite trigger aborting the insert,
as a full disk or a lost connection would) answers 500 and logs the traceback; that traceback
carries no phone number of the request, neither as the service's formatter writes it nor as
the code handed it to logging (any other handler sees that). An extension such as a dispatcher
seat's or a unit's `8417` is not a shape the formatter's safety net recognises."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.logs import TextFormatter
from storage.engine import session_scope
from storage.models.auth import Role
from storage.tokens import create_token
from tests.conftest import service_settings

FAILING_INSERT = (
    "CREATE TRIGGER units_fail BEFORE INSERT ON units "
    "BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END"
)
NUMBERS = {"8417": "8417", "0571-87654321": "87654321", "13912345601": "13912345601"}


@pytest.fixture
def logs() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """What the service's text format writes, and the records as the code made them."""
    written, raw = io.StringIO(), io.StringIO()
    handlers = [logging.StreamHandler(written), logging.StreamHandler(raw)]
    handlers[0].setFormatter(TextFormatter())
    handlers[1].setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in handlers:
        root.addHandler(h)
    try:
        yield written, raw
    finally:
        for h in handlers:
            root.removeHandler(h)


def test_a_database_failure_logs_no_number_of_the_request(
    tmp_path: Path, logs: tuple[io.StringIO, io.StringIO]
) -> None:
    app = create_app(service_settings(tmp_path, extensions_pattern="^[1-9][0-9]{3}$"))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        factory = app.state.service.session_factory
        with session_scope(factory) as s:
            token = create_token(s, name="admin", role=Role.ADMIN, unit_code=None)
            s.execute(text(FAILING_INSERT))
        for n, (number, _) in enumerate(NUMBERS.items()):
            resp = client.post(
                "/api/v1/units",
                headers={"Authorization": f"Bearer {token}"},
                json={"code": f"L7{n}", "name": "县自来水公司", "kind": "linkage",
                      "fallback_number": number},
            )  # fmt: skip
            assert resp.status_code == 500, resp.text
            assert all(d not in resp.text for d in NUMBERS.values())
    written, raw = (s.getvalue() for s in logs)
    assert raw.count("unhandled error on POST /api/v1/units") == len(NUMBERS), raw
    assert "simulated storage failure" in raw and "INSERT INTO units" in raw
    for digits in NUMBERS.values():
        assert digits not in written, [line for line in written.splitlines() if digits in line]
        assert digits not in raw, [line for line in raw.splitlines() if digits in line]
