"""Run the SIP lab by hand: Kamailio plus N baresip phones, until Ctrl-C.

``python scripts/lab.py --phones 3`` (or ``python -m lab.cli``) starts Kamailio on a free
loopback port and phones 2001.. with tones 400/1000/1800/... Hz, prints the accounts,
ports and files, and stops everything (by PID) on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from lab.session import LabSession

DEFAULT_TONES = (400.0, 1000.0, 1800.0, 600.0, 1400.0, 2200.0, 800.0, 1200.0, 1600.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path("lab-run"),
        help="directory for configs, logs and recordings (emptied first)",
    )
    ap.add_argument("--phones", type=int, default=2, help="number of phones 2001.. (max 9)")
    ap.add_argument(
        "--tones",
        type=str,
        default="",
        help="comma-separated tone frequencies in Hz for the phones",
    )
    ap.add_argument(
        "--invite-auth",
        choices=("407", "401"),
        default="407",
        help="challenge INVITE with 407 (default) or 401 (pyVoIP mode)",
    )
    ap.add_argument("--port", type=int, default=None, help="Kamailio UDP/TCP port")
    ap.add_argument(
        "--trunk-prefix", default=None, help="R-URI user prefix routed to --trunk-target (e.g. 3)"
    )
    ap.add_argument("--trunk-target", default=None, help="host:port of the trunk peer")
    ap.add_argument("--manual-answer", action="store_true", help="phones do not auto-answer")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not 0 <= args.phones <= 9:
        sys.exit("--phones must be 0..9")
    tones = [float(t) for t in args.tones.split(",") if t] or list(DEFAULT_TONES)
    if len(tones) < args.phones:
        sys.exit("give one tone per phone")
    trunk = None
    if args.trunk_target:
        host, _, port = args.trunk_target.rpartition(":")
        trunk = (host or "127.0.0.1", int(port))
    shutil.rmtree(args.workdir, ignore_errors=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    phones = [(str(2001 + i), tones[i]) for i in range(args.phones)]
    session = LabSession(
        args.workdir.resolve(),
        phones=phones,
        invite_auth=args.invite_auth,
        udp_port=args.port,
        trunk_prefix=args.trunk_prefix,
        trunk_target=trunk,
        auto_answer=not args.manual_answer,
    )
    with session:
        print(session.describe(), flush=True)
        print(
            "Control a phone: python -m lab.ctl PORT dial 2002   (Ctrl-C stops the lab)", flush=True
        )
        stop.wait()
    print("lab stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
