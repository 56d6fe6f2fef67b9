"""Prometheus metrics of one service process, read over `--http` (wyoming_core/http.py).

Each process keeps its own registry (never prometheus_client's global one): the service makes a
`ServiceMetrics` (or its own subclass with its latency hooks), hands it to `serve()` and to its
handlers, and they call it at the few moments that matter. Nothing here blocks or does I/O; the
gauges that describe the present (connections, queue depth) are read when /metrics is scraped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import ParamSpec, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector

from . import errors

P = ParamSpec("P")
T = TypeVar("T")

# Seconds a user waits for something (a transcript, first audio, a sentence): 50 ms to a minute.
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
# Seconds of work per second of audio: under 1 keeps up with speech.
RTF_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)

# Every code an `error` event may carry; anything else is counted as "other" (bounded labels).
ERROR_CODES = frozenset(
    value for name, value in vars(errors).items() if name.isupper() and isinstance(value, str)
)
OTHER = "other"


class PoolLoad(Protocol):
    """What a worker pool tells about its load (wyoming_core/workers.py)."""

    size: int

    @property
    def queued(self) -> int: ...

    @property
    def running(self) -> int: ...


class ServiceMetrics:
    """The metrics every service has: requests and errors by code, connections, worker pools,
    model load times. `kinds`: the request kinds the service answers (counted from zero)."""

    def __init__(self, service: str, version: str, kinds: Iterable[str] = ()) -> None:
        self.service = service
        self.version = version
        self.registry = CollectorRegistry()
        registry = self.registry
        ProcessCollector(registry=registry)  # CPU seconds, resident memory, open files
        Info("wyoming_service", "The service and its version", registry=registry).info(
            {"service": service, "version": version}
        )
        self._requests = Counter(
            "wyoming_requests", "Requests answered, by kind", ["kind"], registry=registry
        )
        self._errors = Counter(
            "wyoming_errors", "Error events sent to clients, by code", ["code"], registry=registry
        )
        self._connections = Gauge("wyoming_connections", "Client connections open now", registry=registry)
        self._load = Gauge(
            "wyoming_model_load_seconds", "Seconds the model took to load", ["model"], registry=registry
        )
        self._queued = Gauge(
            "wyoming_queue_depth", "Model calls waiting for a free worker", ["pool"], registry=registry
        )
        self._running = Gauge(
            "wyoming_workers_busy", "Workers running a model call now", ["pool"], registry=registry
        )
        self._workers = Gauge("wyoming_workers", "Workers in the pool", ["pool"], registry=registry)
        for kind in ("describe", *kinds):
            self._requests.labels(kind=kind)
        for code in sorted(ERROR_CODES | {OTHER}):
            self._errors.labels(code=code)

    # ---- called by wyoming_core ------------------------------------------------

    def request(self, kind: str) -> None:
        self._requests.labels(kind=kind).inc()

    def error(self, code: str) -> None:
        self._errors.labels(code=code if code in ERROR_CODES else OTHER).inc()

    def watch_connections(self, count: Callable[[], int]) -> None:
        """`count()` is read at every scrape (the server's own tally: nothing to keep in step)."""
        self._connections.set_function(count)

    # ---- called by services ----------------------------------------------------

    def model_loaded(self, model: str, seconds: float) -> None:
        self._load.labels(model=model).set(seconds)

    def watch_pool(self, name: str, pool: PoolLoad) -> None:
        self._queued.labels(pool=name).set_function(lambda: pool.queued)
        self._running.labels(pool=name).set_function(lambda: pool.running)
        self._workers.labels(pool=name).set(pool.size)

    # ---- for subclasses --------------------------------------------------------

    def histogram(
        self, name: str, text: str, buckets: Iterable[float], labels: Iterable[str] = ()
    ) -> Histogram:
        return Histogram(name, text, list(labels), buckets=tuple(buckets), registry=self.registry)


class Stopwatch:
    """Seconds spent inside its `with` blocks, added up (e.g. a turn's time waiting on a model)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._began = 0.0

    def __enter__(self) -> Stopwatch:
        self._began = time.monotonic()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _error: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.seconds += time.monotonic() - self._began

    async def __aenter__(self) -> Stopwatch:
        return self.__enter__()

    async def __aexit__(
        self, _type: type[BaseException] | None, _error: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.__exit__(_type, _error, _tb)


def timed(func: Callable[P, T]) -> Callable[P, tuple[T, float]]:
    """`func` returning also the seconds it ran: run in a worker thread, that is the model's own
    time, without the wait for a free worker."""

    def run(*args: P.args, **kwargs: P.kwargs) -> tuple[T, float]:
        started = time.monotonic()
        result = func(*args, **kwargs)
        return result, time.monotonic() - started

    return run
