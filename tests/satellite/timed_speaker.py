"""A speaker for `--snd-command` that keeps what it plays and when.

    python -m tests.satellite.timed_speaker OUT.raw [RATE]

Appends the raw PCM (16-bit mono, RATE Hz, 22050 by default) it reads on stdin to OUT.raw
and, at the first read, writes `{"started_at": T, "rate": RATE}` to OUT.raw.json: the
monotonic time (one clock for all processes) the stream began. The satellite's player
writes silence in real time between sounds, so sample N sounds at T + N / RATE (give or take
the player's lead, 60 ms by default).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    out = Path(sys.argv[1])
    rate = int(sys.argv[2]) if len(sys.argv) > 2 else 22050
    stamp = out.with_name(out.name + ".json")
    fd = sys.stdin.buffer.fileno()
    with out.open("wb") as sink:
        while data := os.read(fd, 65536):
            if not stamp.exists():
                # The player hands out audio up to now (idle) or its lead ahead (playing):
                # the first read ends about now, so the stream began its length earlier.
                started = time.monotonic() - len(data) / (2 * rate)
                stamp.write_text(json.dumps({"started_at": started, "rate": rate}))
            sink.write(data)
            sink.flush()


if __name__ == "__main__":
    main()
