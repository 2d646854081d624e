"""Child process for the SIGKILL test: records a live call until it is killed.

Usage: python -m tests.recordings.rec_crash_child ROOT RECORDING_ID
Paces 20 ms ticks on absolute deadlines like the media engine, flushes once per second like the
writer's owner, and prints "recording <directory>" once the writer exists.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from recordings.writer import RecordingWriter
from tests.recordings.rec_audio import tone_frame


def main() -> None:
    root, recording_id = Path(sys.argv[1]), sys.argv[2]
    writer = RecordingWriter(root, recording_id)
    print(f"recording {writer.directory}", flush=True)
    start = time.monotonic()
    tick = 0
    while True:
        caller, unit = tone_frame(400, tick), tone_frame(1800, tick)
        writer.write(caller, {"caller": caller, "unit": unit})
        tick += 1
        if tick % 50 == 0:
            writer.flush()
        delay = start + tick * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)


if __name__ == "__main__":
    main()
