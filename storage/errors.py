"""Storage errors.

StorageError
 ├── StorageConfigError      bad URL or unreachable database at start-up
 ├── NotFound                a row that was asked for by id does not exist
 └── Conflict                a uniqueness or state rule would be broken
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every storage error."""


class StorageConfigError(StorageError):
    """The database URL is invalid or the database cannot be reached."""


class NotFound(StorageError):
    """A row asked for does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class Conflict(StorageError):
    """The change would break a uniqueness or state rule."""
