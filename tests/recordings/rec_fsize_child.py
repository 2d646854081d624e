"""Child process for the real-limit test: records 3 s into files capped by RLIMIT_FSIZE.

Usage: python -m tests.recordings.rec_fsize_child ROOT LIMIT_BYTES
With the file size limit set (and SIGXFSZ ignored) the kernel refuses to grow a track past
LIMIT_BYTES with a real EFBIG, exactly like a full volume refuses with ENOSPC. Prints one JSON
line per flush error and a final line with the finalised info.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from pathlib import Path

from recordings.errors import RecordingWriteError
from recordings.writer import RecordingWriter
from tests.recordings.rec_audio import tone_frame


def main() -> None:
    root, limit = Path(sys.argv[1]), int(sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    writer = RecordingWriter(root, "capped")
    for tick in range(150):
        frame = tone_frame(400, tick)
        writer.write(frame, {"caller": frame})
        if tick % 50 == 49:
            try:
                writer.flush()
            except RecordingWriteError as exc:
                print(json.dumps({"flush_error": str(exc), "errno": exc.errno}), flush=True)
    info = writer.finalise()
    print(json.dumps({"info": info.to_json(), "directory": str(info.directory)}), flush=True)


if __name__ == "__main__":
    main()
