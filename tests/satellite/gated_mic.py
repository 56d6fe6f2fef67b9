"""A microphone for `--mic-command` whose second part waits for the test to say "go".

    python -m tests.satellite.gated_mic FIRST.raw SECOND.raw GATE [TIMES.json]

Writes FIRST (raw 16 kHz mono PCM16) at real-time pace, then silence until the file GATE
exists, then SECOND, then silence until the satellite closes the pipe. So a test can run the
next turn when it is ready for it, not at a fixed time that a busy machine may miss.
With TIMES.json it writes there `{"second_at": T}`: the monotonic time SECOND began to
enter the microphone (one clock for all processes, so it lines up with the speaker's).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

RATE, FRAME = 16000, 2
CHUNK = RATE // 50 * FRAME  # 20 ms


def main() -> None:
    first, second, gate = (Path(arg) for arg in sys.argv[1:4])
    times = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    out = sys.stdout.buffer
    silence = b"\0" * CHUNK
    started = time.monotonic()
    sent = 0  # bytes written; paced against the clock

    def write(chunk: bytes) -> None:
        nonlocal sent
        ahead = started + sent / (RATE * FRAME) - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        out.write(chunk)
        out.flush()
        sent += len(chunk)

    def play(pcm: bytes) -> None:
        for start in range(0, len(pcm), CHUNK):
            write(pcm[start : start + CHUNK].ljust(CHUNK, b"\0"))

    try:
        play(first.read_bytes())
        while not gate.exists():
            write(silence)
        if times is not None:  # when its first sample is due (or now, if writing fell behind)
            due = max(time.monotonic(), started + sent / (RATE * FRAME))
            times.write_text(json.dumps({"second_at": due}))
        play(second.read_bytes())
        while True:
            write(silence)
    except (BrokenPipeError, KeyboardInterrupt):
        os._exit(0)  # the satellite has gone: no flush of a closed pipe at exit


if __name__ == "__main__":
    main()
