"""A database error never carries the statement's parameters (phone numbers among them): its
text goes to logs (tracebacks), to /readyz details (a component's last error) and into stored
failure reasons (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.registry import Unit, UnitKind


def test_a_failed_statement_does_not_quote_its_parameters(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as s:
            s.add(Unit(code="L01", name="县自来水公司", kind=UnitKind.LINKAGE))
        with pytest.raises(IntegrityError) as failed, session_scope(factory) as s:
            s.add(Unit(code="L01", name="县供电公司", kind=UnitKind.LINKAGE,
                       fallback_number="+8613912345601"))  # fmt: skip
    finally:
        engine.dispose()
    text = str(failed.value)
    assert "INSERT INTO units" in text  # the statement is still named, for whoever debugs it
    assert "13912345601" not in text and "县供电公司" not in text, text
