"""FastAPI dependency aliases (the `Annotated` style of the FastAPI template).

FastAPI runs a plain-function dependency in a worker thread: one hop to a thread and one back to
the event loop each, and on a busy loop (the 20 ms media tick, every call flow) each hop waits
for the loop and the GIL (issue 17: 6-7 hops were most of POST /bridges' p95 on PostgreSQL). So
what does no I/O is `async` here: the service lookup, and making the request's session (a
Session takes its connection on first use, in the handler's thread). Finishing the session
(commit, rollback, close) is I/O when a transaction is open: then it runs in a worker thread,
never on the loop; a handler that committed already leaves nothing to send.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated

from anyio import CancelScope, to_thread
from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from api.service import Service
from storage.engine import finish_session


async def get_service(request: Request) -> Service:
    """The service container built by create_app."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def _idle(session: Session) -> bool:
    """Nothing to commit or roll back: closing it sends nothing to the database."""
    return not (session.in_transaction() or session.new or session.dirty or session.deleted)


async def get_session(service: ServiceDep) -> AsyncIterator[Session]:
    """One database session per request: committed at the end, rolled back on error, always
    closed (in a worker thread whenever that talks to the database)."""
    session = service.session_factory()
    done = False
    try:
        yield session
        done = True
    finally:
        if _idle(session):
            session.close()
        else:  # shielded: a cancelled request still ends its transaction
            with CancelScope(shield=True):
                await to_thread.run_sync(partial(finish_session, session, ok=done))


SessionDep = Annotated[Session, Depends(get_session, scope="function")]

# The largest integers the databases hold: a bigint (SQLite's INTEGER, PostgreSQL's bigint; page
# offsets) and PostgreSQL's integer (serial ids, e.g. the audit log's). An offset or an id bound
# above them used to reach the database and fail there (500: SQLite's OverflowError, PostgreSQL's
# "bigint/integer out of range"); as the `le` of those parameters they are refused 422.
SQL_BIGINT_MAX = 2**63 - 1
SQL_INTEGER_MAX = 2**31 - 1
OffsetQuery = Annotated[int, Query(ge=0, le=SQL_BIGINT_MAX, description="rows to skip")]
