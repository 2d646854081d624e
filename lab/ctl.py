"""Send one command to a lab phone's ctrl_tcp port and print the answer.

``python -m lab.ctl PORT COMMAND [PARAMS...]``, e.g. ``python -m lab.ctl 21005 dial 2002``,
``... sndcode 5``, ``... hangup``, ``... listcalls``, ``... answermode manual``.
"""

from __future__ import annotations

import sys

from lab.baresip_ctrl import CtrlClient


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    client = CtrlClient(int(args[0]), "ctl")
    client.connect()
    try:
        resp = client.command(args[1], " ".join(args[2:]) or None)
    finally:
        client.close()
    print(resp.get("data", ""))
    return 0 if resp.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
