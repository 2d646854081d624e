"""What to dial for one entry of a dial list: the number, and an extension to key in after.

A duty phone behind a switchboard (`0833-4201234转8001`) is dialled as its public number; once
the switchboard answered, the extension digits are sent as DTMF. Dial lists may hold plain
strings (no extension) or `Destination`s; `as_destination` turns either into a `Destination`.
"""

from __future__ import annotations

from dataclasses import dataclass

from callflows.errors import CallflowConfigError

EXTENSION_DIGITS = frozenset("0123456789*#")


@dataclass(frozen=True, slots=True)
class Destination:
    """A number to dial (`number`, what goes in the request URI) and the extension digits to
    send by DTMF after the answer (`extension`, None for a direct line)."""

    number: str
    extension: str | None = None

    def __post_init__(self) -> None:
        if not self.number:
            raise CallflowConfigError("empty number in a dial list")
        ext = self.extension
        if ext is not None and (not ext or len(ext) > 16 or set(ext) - EXTENSION_DIGITS):
            raise CallflowConfigError(f"not keypad digits for an extension: {ext!r}")

    def __str__(self) -> str:
        return f"{self.number};ext={self.extension}" if self.extension else self.number


def as_destination(entry: str | Destination) -> Destination:
    """A dial-list entry as a `Destination` (a plain string has no extension)."""
    return entry if isinstance(entry, Destination) else Destination(entry)
