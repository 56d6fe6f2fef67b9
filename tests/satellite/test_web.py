"""The satellite's status page (--http) in a real headless Chromium, during real turns.

Real STT, TTS and conversation service (on the fake Ollama); the page is driven by selenium and
what is asserted is what the page shows, and what the speaker (--snd-file) plays.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.satellite.helpers import GatedMic, SatelliteRun, silence, snd_file_pcm, sound_spans, speech
from tests.satellite.test_standalone import MODEL_REQUEST, StartModel, start_model  # noqa: F401
from tests.support.services import ServiceProcess, free_port
from tests.support.waiting import until

pytest.importorskip("selenium")
if shutil.which("chromedriver") is None or shutil.which("chromium") is None:
    pytest.skip("Chromium and chromedriver are not installed (scripts/setup.sh)", allow_module_level=True)

from selenium.webdriver import Chrome
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.slow

LONG_REPLY = " ".join(
    f"This is sentence number {n} of a rather long answer about penguins." for n in range(1, 9)
)
RATE = 22050


@pytest.fixture
def browser() -> Iterator[Chrome]:
    options = Options()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,720"):
        options.add_argument(arg)
    driver = Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The page in the browser; every call blocks, so the test runs them in a thread (the fake
    Ollama runs on the test's event loop)."""

    def __init__(self, driver: Chrome, url: str) -> None:
        self.driver = driver
        self.url = url

    def open(self) -> None:
        self.driver.get(self.url)
        self.wait_text("conn", "live")

    def text(self, element: str) -> str:
        return str(self.driver.find_element(By.ID, element).text)

    def wait_text(self, element: str, part: str, timeout: float = 120.0) -> None:
        WebDriverWait(self.driver, timeout, 0.1).until(
            lambda d: part.lower() in d.find_element(By.ID, element).text.lower(),
            f"{part!r} not in #{element}",
        )

    def wait_exact(self, element: str, text: str, timeout: float = 120.0) -> None:
        WebDriverWait(self.driver, timeout, 0.1).until(
            lambda d: d.find_element(By.ID, element).text == text, f"#{element} never read {text!r}"
        )

    def wait_chart(self, bars: int, timeout: float = 120.0) -> None:
        WebDriverWait(self.driver, timeout, 0.1).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#chart rect")) >= bars, "no turn in the chart"
        )

    def wait_state(self, state: str, timeout: float = 120.0) -> None:
        WebDriverWait(self.driver, timeout, 0.05).until(
            lambda d: d.find_element(By.ID, "state").get_attribute("data-state") == state,
            f"the page never showed the state {state!r}",
        )

    def history(self) -> list[str]:
        """The state changes the page lists, oldest first."""
        items = self.driver.find_elements(By.CSS_SELECTOR, "#history li")
        return [str(item.text) for item in reversed(items)]

    def click(self, element: str) -> None:
        self.driver.find_element(By.ID, element).click()


def _post(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


async def test_page_follows_a_real_turn_and_stops_the_reply(
    tmp_path: Path,
    stt_service: ServiceProcess,
    tts_service: ServiceProcess,
    start_model: StartModel,  # noqa: F811
    browser: Chrome,
) -> None:
    def answer(messages: list[dict[str, Any]]) -> str:
        turns = sum(1 for m in messages if m.get("role") == "user")
        return "Penguins love cold water." if turns == 1 else LONG_REPLY

    model = await start_model(answer)
    # Each request is said only once the test opens its gate: the first once the page is open.
    request = silence(0.5) + speech(MODEL_REQUEST) + silence(2.0)
    mic = GatedMic(tmp_path / "mic", silence(0.5), request, request)
    out = tmp_path / "out.wav"
    port = free_port()
    sat = await SatelliteRun(
        "--mic-command",
        mic.command(),
        "--snd-file",
        str(out),
        "--wake-word",
        "hey_jarvis",
        *("--stt-uri", stt_service.uri, "--tts-uri", tts_service.uri, "--handle-uri", model.uri),
        "--no-sounds",
        "--follow-up",
        "0",
        "--http",
        f"127.0.0.1:{port}",
    ).start()
    try:
        await sat.wait_for("Satellite .* is ready", 120)
        page = Page(browser, f"http://127.0.0.1:{port}/")
        await asyncio.to_thread(page.open)
        await asyncio.to_thread(page.wait_state, "waiting")
        # Nothing changes on a GET, and a control without the page's header is refused.
        assert await asyncio.to_thread(_post, f"{page.url}control/stop", {}) == 403

        # A first turn, answered in full: its stages are drawn in the chart.
        mic.open(1)
        await asyncio.to_thread(page.wait_text, "reply", "cold water", 180)
        await asyncio.to_thread(page.wait_chart, 1, 120)
        await asyncio.to_thread(page.wait_state, "waiting", 60)
        await asyncio.to_thread(page.wait_text, "services", f"{stt_service.uri} answering", 30)

        # A second one, with a long reply.
        mic.open(2)
        await asyncio.to_thread(page.wait_text, "reply", "sentence number 1", 180)
        await asyncio.to_thread(page.wait_state, "speaking", 180)
        await asyncio.to_thread(page.wait_text, "transcript", "penguin")
        await asyncio.to_thread(page.wait_text, "reply", "sentence number 1")
        history = await asyncio.to_thread(page.history)
        states = [line for line in history if "wake word" in line or "waiting for the answer" in line]
        assert any("listening to the request" in line and "hey_jarvis" in line for line in history), history
        order = [
            next(i for i, line in enumerate(history) if key in line)
            for key in ("listening to the request", "waiting for the answer", "speaking the answer")
        ]
        assert order == sorted(order), (history, states)
        await asyncio.to_thread(browser.save_screenshot, str(tmp_path / "status-page.png"))

        # Stop the long reply while it plays: the speaker goes quiet, the satellite waits again.
        await until(lambda: bool(sound_spans(snd_file_pcm(out), RATE)), 60, sat.log)
        await asyncio.to_thread(page.click, "stop")
        await asyncio.to_thread(page.wait_text, "msg", "stop: done", 30)
        await asyncio.to_thread(page.wait_state, "waiting", 30)
        stopped_at = len(snd_file_pcm(out)) / (2 * RATE)
        # The player writes silence in real time: wait for 3 s more of it, then look.
        await until(lambda: len(snd_file_pcm(out)) / (2 * RATE) > stopped_at + 3.0, 60, sat.log)
        spans = sound_spans(snd_file_pcm(out), RATE)
        assert spans and spans[-1][1] <= stopped_at + 0.5, (spans, stopped_at)
        played = sum(end - start for start, end in spans)
        assert played < 15.0, spans  # the whole reply is about 30 s of speech
        assert len(model.asked()) == 2
    finally:
        await sat.stop()


async def test_page_serves_no_cdn_and_controls_need_the_token(tmp_path: Path) -> None:
    """Bound to all addresses with a token: the page loads nothing from elsewhere, and a control
    is refused without the token and done with it."""
    mic = tmp_path / "mic.wav"
    from tests.satellite.helpers import mic_wav

    mic_wav(mic, 0.5)
    port = free_port()
    sat = await SatelliteRun(
        "--mic-file",
        str(mic),
        "--snd-file",
        str(tmp_path / "out.wav"),
        "--no-sounds",
        *(
            "--stt-uri",
            "tcp://127.0.0.1:9",
            "--tts-uri",
            "tcp://127.0.0.1:9",
            "--handle-uri",
            "tcp://127.0.0.1:9",
        ),
        "--http",
        f"0.0.0.0:{port}",
        "--http-token",
        "s3cret",
    ).start()
    try:
        await sat.wait_for("Satellite .* is ready", 120)
        base = f"http://127.0.0.1:{port}"

        def get(path: str) -> str:
            with urllib.request.urlopen(base + path, timeout=10) as response:
                return str(response.read().decode())

        html = await asyncio.to_thread(get, "/")
        assert "<script" in html and "http://" not in html and "https://" not in html
        headers = {"X-Status-Page": "1"}
        assert await asyncio.to_thread(_post, f"{base}/control/stop", headers) == 401
        assert await asyncio.to_thread(_post, f"{base}/control/stop", {**headers, "X-Token": "nope"}) == 401
        assert await asyncio.to_thread(_post, f"{base}/control/stop", {**headers, "X-Token": "s3cret"}) == 200
        assert (
            await asyncio.to_thread(_post, f"{base}/control/reboot", {**headers, "X-Token": "s3cret"}) == 404
        )
        health = json.loads(await asyncio.to_thread(get, "/healthz"))
        assert health["ready"] is True
    finally:
        await sat.stop()


async def test_mute_from_the_page_and_volume(tmp_path: Path, browser: Chrome) -> None:
    """Muted from the page, the satellite does not hear the wake word; unmuted, it does. The
    volume set on one page is pushed to the page."""
    wake = speech("Hey Jarvis.")
    mic = GatedMic(tmp_path / "mic", silence(0.5), wake + silence(2.0), wake + silence(2.0))
    port = free_port()
    nowhere = "tcp://127.0.0.1:9"
    sat = await SatelliteRun(
        "--mic-command",
        mic.command(),
        "--snd-file",
        str(tmp_path / "out.wav"),
        "--wake-word",
        "hey_jarvis",
        *("--stt-uri", nowhere, "--tts-uri", nowhere, "--handle-uri", nowhere),
        "--no-sounds",
        "--http",
        f"127.0.0.1:{port}",
    ).start()
    try:
        await sat.wait_for("Satellite .* is ready", 120)
        page = Page(browser, f"http://127.0.0.1:{port}/")
        await asyncio.to_thread(page.open)
        await asyncio.to_thread(page.click, "mute")
        await asyncio.to_thread(page.wait_text, "mute", "unmute", 30)
        mic.open(1)
        # The wake word is said while muted, and well over (with its 2 s of silence after).
        await until(lambda: mic.said_at(1) is not None, 60, sat.log)
        said = mic.said_at(1)
        assert said is not None
        await until(lambda: time.monotonic() > said + 6.0, 30)
        assert not any("hey_jarvis" in line for line in await asyncio.to_thread(page.history))
        await asyncio.to_thread(page.click, "mute")  # now "Unmute microphone"
        await asyncio.to_thread(page.wait_exact, "mute", "Mute microphone", 30)
        mic.open(2)
        await asyncio.to_thread(page.wait_text, "history", "wake word 'hey_jarvis'", 120)

        headers = {"X-Status-Page": "1"}
        bad = await asyncio.to_thread(_post, f"{page.url}control/volume?percent=loud", headers)
        assert bad == 400
        assert await asyncio.to_thread(_post, f"{page.url}control/volume?percent=40", headers) == 200
        await asyncio.to_thread(page.wait_text, "volval", "40", 30)
    finally:
        await sat.stop()
