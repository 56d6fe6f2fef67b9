"""What the conversation service measures (served by `--http`): turns with and without the model,
the model's time and ours, the first sentence, answers by outcome and why one was not handled."""

from __future__ import annotations

import re
import time

from prometheus_client import Counter

from wyoming_core.metrics import LATENCY_BUCKETS, OTHER, ServiceMetrics

from . import __version__

# A turn that asked the model, and one answered without it (memory reset, a local command).
MODEL = "model"
LOCAL = "local"
# Reasons are the service's own failure codes; anything else is "other" (bounded labels).
_REASON = re.compile(r"[a-z][a-z0-9-]{0,39}")


class LlmMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("wyoming-llm", __version__, kinds=("handle",))
        self._turn = self.histogram(
            "wyoming_llm_turn_seconds",
            "Seconds from a transcript to the end of its answer, by path (model or local)",
            LATENCY_BUCKETS,
            ["path"],
        )
        self._first = self.histogram(
            "wyoming_llm_first_sentence_seconds",
            "Seconds from a transcript to the first sentence of its answer, by path",
            LATENCY_BUCKETS,
            ["path"],
        )
        self._model = self.histogram(
            "wyoming_llm_model_seconds",
            "Seconds of a turn spent reading the model's answer (every round of tool calls)",
            LATENCY_BUCKETS,
        )
        self._overhead = self.histogram(
            "wyoming_llm_overhead_seconds",
            "Seconds of a turn that asked the model spent outside it (prompt, memory, tools, sending)",
            LATENCY_BUCKETS,
        )
        self._answers = Counter(
            "wyoming_llm_answers",
            "Answers, by outcome (handled or not-handled)",
            ["outcome"],
            registry=self.registry,
        )
        self._failures = Counter(
            "wyoming_llm_not_handled", "Answers not handled, by reason", ["reason"], registry=self.registry
        )
        for path in (MODEL, LOCAL):
            self._turn.labels(path=path)
            self._first.labels(path=path)
        for outcome in ("handled", "not-handled"):
            self._answers.labels(outcome=outcome)

    def turn(self) -> TurnTimer:
        """A transcript came: counted, and timed until `TurnTimer.done`."""
        self.request("handle")
        return TurnTimer(self)

    def finished(
        self, seconds: float, first: float | None, handled: bool, reason: str | None, model: float | None
    ) -> None:
        path = LOCAL if model is None else MODEL
        self._turn.labels(path=path).observe(seconds)
        if first is not None:
            self._first.labels(path=path).observe(first)
        if model is not None:
            self._model.observe(model)
            self._overhead.observe(max(0.0, seconds - model))
        self._answers.labels(outcome="handled" if handled else "not-handled").inc()
        if not handled:
            label = reason if reason is not None and _REASON.fullmatch(reason) else OTHER
            self._failures.labels(reason=label).inc()


class TurnTimer:
    """One turn: from its transcript to its first sentence (`sentence`) and its end (`done`)."""

    def __init__(self, metrics: LlmMetrics) -> None:
        self._metrics = metrics
        self._started = time.monotonic()
        self._first: float | None = None

    def sentence(self) -> None:
        if self._first is None:
            self._first = time.monotonic() - self._started

    def done(self, handled: bool, reason: str | None, model_seconds: float | None) -> None:
        """`model_seconds`: None when the model was not asked."""
        seconds = time.monotonic() - self._started
        self._metrics.finished(seconds, self._first, handled, reason, model_seconds)
