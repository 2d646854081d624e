"""The digits of one leg as an async stream."""

from __future__ import annotations

import asyncio

from telephony.media.errors import EndpointClosed
from telephony.types import DtmfDigit


class DigitStream:
    """The key presses of one leg, each once, in order; `async for` ends when the leg closes."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[DtmfDigit | None] = asyncio.Queue()

    def put(self, digit: DtmfDigit) -> None:
        self._queue.put_nowait(digit)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def get(self) -> DtmfDigit:
        """The next key press; raises EndpointClosed once the leg is closed."""
        digit = await self._queue.get()
        if digit is None:
            self._queue.put_nowait(None)
            raise EndpointClosed("digits")
        return digit

    def get_nowait(self) -> DtmfDigit | None:
        """The next key press if one is waiting, else None."""
        if self._queue.empty():
            return None
        digit = self._queue.get_nowait()
        if digit is None:
            self._queue.put_nowait(None)
        return digit

    def __aiter__(self) -> DigitStream:
        return self

    async def __anext__(self) -> DtmfDigit:
        try:
            return await self.get()
        except EndpointClosed:
            raise StopAsyncIteration from None
