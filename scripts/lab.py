#!/usr/bin/env python3
"""Run the SIP lab by hand (Kamailio + baresip phones on loopback) until Ctrl-C.

.venv/bin/python scripts/lab.py --phones 3        # see --help
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.cli import main

raise SystemExit(main())
