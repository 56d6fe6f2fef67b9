"""A microphone for `--mic-command` whose second part waits for the test to say "go".

    python -m tests.satellite.gated_mic FIRST.raw SECOND.raw GATE [TIMES.json] [--then GATE2 THIRD.raw]...

Writes FIRST (raw 16 kHz mono PCM16) at real-time pace, then silence until the file GATE
exists, then SECOND, then silence until the satellite closes the pipe. So a test can run the
next turn when it is ready for it, not at a fixed time that a busy machine may miss.
With TIMES.json it writes there `{"second_at": T, "then_at": [...]}`: the monotonic time
SECOND (and each later part) began to enter the microphone (one clock for all processes, so
it lines up with the speaker's). Each `--then GATE PART` says PART once GATE exists.
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
    args, later = sys.argv[1:], []
    while "--then" in args:
        at = args.index("--then")
        later.append((Path(args[at + 1]), Path(args[at + 2])))
        del args[at : at + 3]
    first, second, gate = (Path(arg) for arg in args[:3])
    times = Path(args[3]) if len(args) > 3 else None
    then_at: list[float] = []
    noted: dict[str, float | list[float]] = {}
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

    def play_at_gate(gate: Path, part: Path, key: str) -> None:
        while not gate.exists():
            write(silence)
        # When its first sample is due (or now, if writing fell behind); noted before it plays.
        due = max(time.monotonic(), started + sent / (RATE * FRAME))
        if key == "then_at":
            then_at.append(due)
            noted[key] = then_at
        else:
            noted[key] = due
        if times is not None:
            times.write_text(json.dumps(noted))
        play(part.read_bytes())

    try:
        play(first.read_bytes())
        play_at_gate(gate, second, "second_at")
        for next_gate, part in later:
            play_at_gate(next_gate, part, "then_at")
        while True:
            write(silence)
    except (BrokenPipeError, KeyboardInterrupt):
        os._exit(0)  # the satellite has gone: no flush of a closed pipe at exit


if __name__ == "__main__":
    main()
