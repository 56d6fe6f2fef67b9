"""The stack's process group: every child's output is read, however long its lines."""

from __future__ import annotations

import asyncio
import io
import sys

from stack.processes import MAX_LINE_BYTES, LineCutter, ProcessGroup, Program

# A 100 KB line (over asyncio's 64 KiB line limit), then 1 MB more: more than a pipe holds, so
# the child finishes only if its output is still being read after the long line.
_CHATTY = """
import sys
print("v" * 100_000, flush=True)
for n in range(10_000):
    print(f"line {n} " + "x" * 100)
print("done", flush=True)
"""


async def test_a_child_printing_a_100_kb_line_is_read_on_and_finishes() -> None:
    output = io.StringIO()
    seen: list[str] = []
    group = ProcessGroup(output=output, on_line=lambda label, line: seen.append(line))
    await group.start(Program("chatty", (sys.executable, "-c", _CHATTY)))
    try:
        assert await asyncio.wait_for(group.wait("chatty"), 60) == 0
    finally:
        await group.stop()
    long_line = seen[0]
    assert long_line.startswith("v" * 1000)
    assert long_line.endswith(f"({100_000 - MAX_LINE_BYTES} more bytes cut)")
    assert len(long_line) < MAX_LINE_BYTES + 100
    assert seen[1:3] == ["line 0 " + "x" * 100, "line 1 " + "x" * 100]
    assert seen[-1] == "done" and len(seen) == 10_002
    assert output.getvalue().splitlines()[-1].endswith("| done")


def test_lines_are_cut_and_split_across_reads() -> None:
    cutter = LineCutter(limit=10)
    assert cutter.feed(b"abc\nde") == ["abc"]
    assert cutter.feed(b"fghijklmnop\nq") == ["defghijklm … (3 more bytes cut)"]
    assert cutter.feed(b"") == []
    assert cutter.close() == ["q"]  # the last line, without a newline
    assert cutter.close() == []
    assert LineCutter(limit=4).feed("é€ab\n".encode()) == ["é\ufffd … (3 more bytes cut)"]
