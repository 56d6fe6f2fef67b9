"""The satellite's status page (--http): its CPU cost and how soon a state change reaches a page.

One satellite waiting for the wake word (a silent --mic-file, no services needed). Its whole
process's CPU (% of a core) is measured with no page open, then with one page connected over
/ws (an aiohttp client reading every message, as a browser would: the browser's own CPU is not
the satellite's). Then push-to-talk is pressed (POST /control/talk) a number of times; every
state change the page receives is timed from the satellite's clock stamp in the message to its
arrival (the same machine, so the same wall clock).

    python -m bench.status_page [--seconds 15] [--presses 10] [--json FILE]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.common import Figure, parser, report
from bench.satellite import _cpu_seconds
from tests.satellite.helpers import SatelliteRun, mic_wav
from tests.support.services import free_port


async def _cpu(sat: SatelliteRun, seconds: float) -> float:
    assert sat.proc is not None
    before, started = _cpu_seconds(sat.proc.pid), time.monotonic()
    await asyncio.sleep(seconds)
    return 100 * (_cpu_seconds(sat.proc.pid) - before) / (time.monotonic() - started)


async def measure(seconds: float, presses: int) -> list[Figure]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-status-page-"))
    mic = mic_wav(tmp / "quiet.wav", 1.0)
    port = free_port()
    nowhere = "tcp://127.0.0.1:9"
    sat = await SatelliteRun(
        *("--mic-file", str(mic), "--snd-file", str(tmp / "out.wav"), "--no-sounds"),
        *("--stt-uri", nowhere, "--tts-uri", nowhere, "--handle-uri", nowhere),
        *("--http", f"127.0.0.1:{port}"),
    ).start()
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    messages = 0
    try:
        await sat.wait_for("is ready", timeout=60)
        await asyncio.sleep(2.0)
        closed = await _cpu(sat, seconds)
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{base}/ws") as ws:
            states: asyncio.Queue[str] = asyncio.Queue()

            async def read() -> None:
                nonlocal messages
                async for message in ws:
                    arrived = time.time()
                    data = json.loads(message.data)
                    messages += 1
                    if data["type"] == "state":
                        latencies.append(arrived - float(data["at"]))
                        states.put_nowait(data["state"])

            reader = asyncio.create_task(read())
            await asyncio.sleep(2.0)
            opened = await _cpu(sat, seconds)
            rate = messages / seconds  # about: the 2 s before are counted too
            headers = {"X-Status-Page": "1"}
            for _ in range(presses):
                async with session.post(f"{base}/control/talk", headers=headers) as response:
                    assert response.status == 200, await response.text()
                # The turn fails at once (no services): wait until it is back to waiting.
                while await asyncio.wait_for(states.get(), 60) != "waiting":
                    pass
            reader.cancel()
    finally:
        await sat.stop()
    return [
        Figure("satellite CPU, no page open", closed, "% of a core"),
        Figure("satellite CPU, one page open", opened, "% of a core"),
        Figure("page open: extra CPU", opened - closed, "% of a core", 2.0),
        Figure("messages to the page per second while waiting", rate, "/s"),
        Figure("state change -> page has it (median)", 1000 * statistics.median(latencies), "ms", 100.0),
        Figure("state change -> page has it (max)", 1000 * max(latencies), "ms"),
    ]


async def main() -> None:
    cli = parser(__doc__ or "")
    cli.add_argument("--seconds", type=float, default=15.0, help="CPU measured this long, each way")
    cli.add_argument("--presses", type=int, default=10, help="Push-to-talk presses timed")
    args = cli.parse_args()
    figures = await measure(args.seconds, args.presses)
    report(figures, "Satellite status page", args.json)


if __name__ == "__main__":
    asyncio.run(main())
