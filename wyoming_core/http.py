"""`--http HOST:PORT`: /metrics (Prometheus text format) and /healthz (JSON) beside the service.

Read-only and small: GET (and HEAD) only, other methods get 405 and other paths 404; nothing
changes on a request. No request body is read (at most 1 KiB accepted), request lines and headers
are bounded, idle keep-alive connections are closed, and there is no access log (a scrape every
few seconds would fill it). It binds 127.0.0.1 unless told otherwise, and the service's `--allow`
list applies here too. Imported only when `--http` is given (aiohttp takes a moment to import).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .admission import peer_address
from .metrics import ServiceMetrics

_LOGGER = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024
MAX_LINE_BYTES = 4096  # the request line (GET /path HTTP/1.1)
MAX_FIELD_BYTES = 4096  # one header
MAX_HEADERS = 32
KEEPALIVE_SECONDS = 30.0


@dataclass(frozen=True)
class Health:
    """What /healthz says. `ready`: the service can do its job now (its model is loaded)."""

    ready: bool
    version: str
    model: str | None = None
    voice: str | None = None
    # Why it is not ready, in words ("loading the model", the load error, ...).
    reason: str | None = None

    def as_json(self, service: str) -> dict[str, object]:
        fields = {key: value for key, value in asdict(self).items() if value is not None}
        return {"service": service, **fields}


HealthCheck = Callable[[], Health]


def monitor_app(
    metrics: ServiceMetrics, health: HealthCheck, allowed: Callable[[str | None], bool] | None = None
) -> web.Application:
    """The app; a service may add its own routes before it is started (e.g. a status page)."""

    @web.middleware
    async def only_allowed(request: web.Request, handler: Handler) -> web.StreamResponse:
        if allowed is not None:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            if not allowed(peer_address(peer)):
                raise web.HTTPForbidden()
        return await handler(request)

    async def get_metrics(_request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(metrics.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def get_health(_request: web.Request) -> web.Response:
        state = health()
        # 503 while not ready, so a probe (Docker, Kubernetes, a load balancer) needs no JSON parser.
        return web.json_response(state.as_json(metrics.service), status=200 if state.ready else 503)

    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[only_allowed])
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", get_health)
    return app


class Monitor:
    """The app served on HOST:PORT until `stop()`."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=KEEPALIVE_SECONDS,
            max_line_size=MAX_LINE_BYTES,
            max_field_size=MAX_FIELD_BYTES,
            max_headers=MAX_HEADERS,
        )

    async def start(self) -> None:
        """OSError if the address cannot be bound (taken, or not this machine's)."""
        await self._runner.setup()
        try:
            site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        addresses = self._runner.addresses
        if addresses and self.port == 0:
            self.port = int(addresses[0][1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        await self._runner.cleanup()
