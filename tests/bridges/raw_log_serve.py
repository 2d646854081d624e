"""`python -m tests.bridges.raw_log_serve RAW_LOG ARGS…` runs `linkcall ARGS…` with one more
root log handler: every record written to RAW_LOG as the code formatted it (level, logger,
message, traceback), before api/logs.py's formatters mask what still looks like a full number.
A number found there was logged unmasked by the code and only the safety net hid it."""

from __future__ import annotations

import logging
import sys


def main() -> None:
    raw = logging.FileHandler(sys.argv[1], encoding="utf-8")
    raw.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(raw)
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    from api.cli import main as linkcall

    linkcall()


if __name__ == "__main__":
    main()
