"""What a long-running part of the service is: started, stopped in reverse order, asked for its
health by /readyz. The composition root (api/) owns the list; the parts below only implement it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Health:
    """One component's state for /readyz."""

    ok: bool
    detail: str = ""


class Component(Protocol):
    """Something the service starts, stops (in reverse order) and asks for its health."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> Health: ...
