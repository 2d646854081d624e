"""A service process for the multi-process test: the survey dispatcher with a fake caller.

    python -m tests.surveys.worker DATABASE_URL DIAL_LOG --call-s 1 --lease-s 2 --concurrency 10

The fake caller appends "<survey id> <pid>" to DIAL_LOG when it dials (one O_APPEND write per
line), waits `call-s` seconds and reports key 1. SIGTERM stops the process cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from datetime import timedelta

from api.settings import Settings
from callflows.ivr import CallOutcome, KeyPromptSettings
from calls.survey_job import SurveyCallResult, SurveyDispatcher, SurveyDispatcherComponent
from storage.base import utcnow
from storage.engine import make_engine, make_session_factory


class LoggingCaller:
    """Records each dial in a file shared by every worker, then answers with key 1."""

    def __init__(self, path: str, call_s: float) -> None:
        self.path = path
        self.call_s = call_s

    async def call(
        self, survey_id: str, number: str, settings: KeyPromptSettings
    ) -> SurveyCallResult:
        started = utcnow()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{survey_id} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
        await asyncio.sleep(self.call_s)
        return SurveyCallResult(
            CallOutcome.ANSWER, "1", "1", started, started + timedelta(seconds=1),
            answer=settings.keys["1"],
        )  # fmt: skip


async def run(args: argparse.Namespace) -> None:
    engine = make_engine(args.url)
    settings = Settings(
        survey_hours="00:00-23:59:59.999999", survey_poll_s=0.2, survey_lease_s=args.lease_s,
        survey_max_concurrent=args.concurrency, node_name=f"worker-{os.getpid()}",
    ).survey_run_settings()  # fmt: skip
    dispatcher = SurveyDispatcher(
        make_session_factory(engine), LoggingCaller(args.log, args.call_s), settings
    )
    component = SurveyDispatcherComponent(dispatcher)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await component.start()
    try:
        while not stop.is_set():  # the service's scheduler runs this tick as an interval job
            await component.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.poll_s)
    finally:
        await component.stop()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("log")
    parser.add_argument("--call-s", type=float, default=1.0)
    parser.add_argument("--lease-s", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=10)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
