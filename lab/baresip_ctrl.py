"""baresip's ``ctrl_tcp`` control protocol: netstring-framed JSON over TCP.

``CtrlClient`` keeps one connection; a reader thread files command responses (matched by
their token) and events (``events``, in arrival order, each stamped with ``_t``, the
``time.monotonic()`` of arrival).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

HOST = "127.0.0.1"

Event = dict[str, Any]


class BaresipError(RuntimeError):
    """A ctrl_tcp command failed or an expected event did not come."""


class CtrlClient:
    """Persistent ctrl_tcp connection with a reader thread."""

    def __init__(self, port: int, name: str) -> None:
        self.port = port
        self.name = name
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._responses: dict[str, Event] = {}
        self.events: list[Event] = []
        self._tokens = itertools.count(1)
        self._closed = False

    def connect(self, timeout: float = 5.0) -> None:
        self._closed = False
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock = socket.create_connection((HOST, self.port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        self._sock.settimeout(None)
        self._thread = threading.Thread(
            target=self._reader, name=f"baresip-ctrl-{self.name}", daemon=True
        )
        self._thread.start()

    def _reader(self) -> None:
        sock = self._sock  # close() may drop the attribute while we block in recv
        assert sock is not None
        buf = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while True:
                    colon = buf.find(b":")
                    if colon < 0:
                        break
                    n = int(buf[:colon])
                    if len(buf) < colon + 1 + n + 1:
                        break
                    payload = buf[colon + 1 : colon + 1 + n]
                    buf = buf[colon + 1 + n + 1 :]  # skip trailing ','
                    self._dispatch(json.loads(payload))
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def _dispatch(self, obj: Event) -> None:
        with self._cond:
            if obj.get("event"):
                obj["_t"] = time.monotonic()
                self.events.append(obj)
            elif obj.get("response"):
                self._responses[str(obj.get("token"))] = obj
            self._cond.notify_all()

    def command(self, cmd: str, params: str | None = None, timeout: float = 5.0) -> Event:
        if self._sock is None:
            raise BaresipError(f"{self.name}: control not connected")
        token = f"{self.name}-{next(self._tokens)}"
        msg: dict[str, str] = {"command": cmd, "token": token}
        if params is not None:
            msg["params"] = params
        data = json.dumps(msg).encode()
        self._sock.sendall(str(len(data)).encode() + b":" + data + b",")
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self._responses:
                left = deadline - time.monotonic()
                if self._closed:
                    raise BaresipError(f"{self.name}: control connection closed during {cmd}")
                if left <= 0:
                    raise BaresipError(f"{self.name}: no response to {cmd} in {timeout}s")
                self._cond.wait(left)
            return self._responses.pop(token)

    def wait_event(
        self, pred: Callable[[Event], bool], timeout: float, start: int = 0, what: str = "event"
    ) -> Event:
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.events):
                    ev = self.events[i]
                    i += 1
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    types = [e.get("type") for e in self.events]
                    raise BaresipError(
                        f"{self.name}: no {what} within {timeout}s (events seen: {types})"
                    )
                if self._closed:
                    raise BaresipError(f"{self.name}: control closed while waiting for {what}")
                self._cond.wait(left)

    def snapshot(self) -> list[Event]:
        """A copy of the events received so far."""
        with self._cond:
            return list(self.events)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
