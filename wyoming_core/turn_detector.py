"""End-of-turn detection: has the user finished, judged from how the last words sounded.

Smart Turn v3.2 (Daily, BSD-2-Clause) is a small Whisper-encoder classifier: it hears the
last 8 s of 16 kHz speech as 80 log-mel bands x 800 frames and answers with the probability
that the turn is complete. Its ONNX file ships inside the `pipecat-ai` wheel, which
scripts/setup.sh installs without its dependencies (only the model file and its licence are
used); `--turn-model PATH` points at a copy elsewhere. One evaluation costs about 3 ms of
features and 30 ms of model on one core here (bench/turn.py measures it).

Blocking: call `TurnDetector.complete_probability` from a worker thread, never the event loop.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .models import ModelNotFoundError, package_path

RATE = 16000
WINDOW_SECONDS = 8
_SAMPLES = RATE * WINDOW_SECONDS
_N_FFT = 400  # 25 ms windows
_HOP = 160  # 10 ms apart
_N_MELS = 80
MODEL_NAME = "smart-turn-v3.2-cpu.onnx"
_PACKAGE_PARTS = ("audio", "turn", "smart_turn", "data", MODEL_NAME)
# Above this the turn counts as complete (the model's own cut-off).
COMPLETE_AT = 0.5


def _slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (Whisper's filters use it)."""
    linear = 3.0 * hz / 200.0
    log = 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(hz >= 1000.0, log, linear)


def _slaney_hz(mel: np.ndarray) -> np.ndarray:
    linear = 200.0 * mel / 3.0
    log = 1000.0 * np.exp((mel - 15.0) * (np.log(6.4) / 27.0))
    return np.where(mel >= 15.0, log, linear)


@cache
def _mel_filters() -> np.ndarray:
    """(80, 201) triangles spaced evenly on the mel scale over 0-8 kHz, each of unit area."""
    bins = np.linspace(0.0, RATE / 2, _N_FFT // 2 + 1)
    edges = _slaney_hz(np.linspace(0.0, float(_slaney_mel(np.array(RATE / 2.0))), _N_MELS + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    triangles = np.clip(np.minimum(rising, falling), 0.0, None)
    return (triangles * (2.0 / (upper - lower))).astype(np.float32)


@cache
def _window() -> np.ndarray:
    # Periodic Hann (as torch.hann_window): the frames overlap-add to a constant.
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT)).astype(np.float32)


def last_window(pcm: np.ndarray) -> np.ndarray:
    """The last 8 s of float audio; shorter audio gets silence before it."""
    if len(pcm) >= _SAMPLES:
        return pcm[-_SAMPLES:]
    return np.concatenate([np.zeros(_SAMPLES - len(pcm), dtype=np.float32), pcm])


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper's input features for exactly 8 s of 16 kHz float audio: (80, 800) float32.

    The waveform is normalised to zero mean and unit variance first, then: power spectrum of
    centred 25 ms Hann frames every 10 ms, 80 mel bands, log10, floored 8 decades under the
    loudest band, scaled to about -1..1.
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.shape != (_SAMPLES,):
        raise ValueError(f"expected {_SAMPLES} samples, got {x.shape}")
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    half = _N_FFT // 2
    padded = np.pad(x, (half, half), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP][:-1]  # 800 frames
    power = np.abs(np.fft.rfft(frames * _window(), axis=1)) ** 2  # (800, 201)
    mel = _mel_filters() @ power.T.astype(np.float32)  # (80, 800)
    spec = np.log10(np.maximum(mel, 1e-10))
    spec = np.maximum(spec, spec.max() - 8.0)
    return ((spec + 4.0) / 4.0).astype(np.float32)


def find_model(given: Path | None = None) -> Path:
    """`given`, or the model inside the installed pipecat-ai package."""
    if given is not None:
        if given.is_file():
            return given
        raise ModelNotFoundError("turn model", str(given), [str(given)], "Check --turn-model.")
    found = package_path("pipecat", *_PACKAGE_PARTS)
    if found is not None and found.is_file():
        return found
    raise ModelNotFoundError(
        "turn model",
        MODEL_NAME,
        ["the pipecat-ai package (not installed)"],
        "Install it without its dependencies: pip install --no-deps pipecat-ai==1.14.0 "
        "(scripts/setup.sh does), or give --turn-model PATH.",
    )


class TurnDetector:
    """Smart Turn on one thread per evaluation; evaluations are serialised per instance."""

    def __init__(self, model: Path | None = None) -> None:
        self.path = find_model(model)
        self._session: Any = None
        self._lock = threading.Lock()  # the instance's own: loading once, one run at a time

    def load(self) -> None:
        """Blocking: open the ONNX model (about 8 MB, a fraction of a second)."""
        with self._lock:
            self._load()

    def _load(self) -> Any:
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1  # one core: it shares the machine with decodes
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        return self._session

    def complete_probability(self, pcm16: bytes) -> float:
        """Blocking: probability (0-1) that the speech in `pcm16` (16 kHz mono, ending now,
        its trailing silence included) is a finished turn."""
        samples = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
        features = log_mel(last_window(samples))[None, :, :]
        with self._lock:
            session = self._load()
            (out,) = session.run(None, {"input_features": features})
        return float(np.asarray(out).reshape(-1)[0])
