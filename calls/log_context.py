"""What a log record is about: the call and leg, as context variables.

The call manager binds `call_id` when a call's runner task starts; the runner binds `leg` while
it executes a command for one leg and in each leg's watcher task. Tasks started meanwhile (the
SIP transactions of a dial, a leg's watchers) inherit both, so their records carry them too.
The log formatters (api/logs.py) read them; nothing else should.
"""

from __future__ import annotations

from contextvars import ContextVar

call_id: ContextVar[str | None] = ContextVar("linkcall_call_id", default=None)
leg: ContextVar[str | None] = ContextVar("linkcall_leg", default=None)
