"""A small HTTP server that speaks Ollama's wire format, for tests and benchmarks.

No Ollama binary can run on the test machines, so services are pointed at this
instead. It answers the way Ollama does, byte for byte where it matters to the
official `ollama` client:

- `POST /api/chat` and `POST /api/generate`: NDJSON streamed with chunked
  transfer encoding, one object per token (`done: false`), then a final
  `done: true` object with `done_reason` and the duration/count statistics;
  `stream: false` gives the single final object with the whole text.
- `GET /api/tags`, `GET /api/version`, `POST /api/show`, `GET /api/ps`.
- Errors as Ollama sends them: `{"error": "..."}` with the status code (404 for a
  model that is not pulled, 500/503 for server failures), or an `error` line in
  the middle of a 200 stream.

Use it in-process::

    async with FakeOllama(reply="Hello there. How can I help?", tokens_per_second=50) as fake:
        client = ollama.AsyncClient(host=fake.url)
        ...
        assert fake.chats[-1].messages[-1]["content"] == "hi"

or as a process (what `tests/support/services.ServiceProcess` starts)::

    python -m tests.support.fake_ollama --port 11434 --reply "Hi." --tokens-per-second 20

Knobs (plain attributes, change them at any time): `reply` (text or a function
of the messages returning text or a list of `ToolCall`s, streamed as Ollama streams
`message.tool_calls`), `capabilities` (what `/api/show` says the model can do),
`tokens_per_second`, `first_token_delay`, `load_delay`, `models`, `mode` (see
`MODES`), `cut_after`, `fail_first`/`fail_status`.
Every request is recorded in `requests` (`chats` for `/api/chat`), with whether
it completed or the client disconnected before the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse


@dataclass(frozen=True)
class ToolCall:
    """A tool call the fake model makes instead of answering (Ollama streams it as one message)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


# A reply function may answer with text, or with tool calls: the client runs them and asks again
# with the results in `role: tool` messages, as with a real model.
ReplyValue = str | list[ToolCall]
Reply = str | Callable[[list[dict[str, Any]]], ReplyValue]

# ok: answer normally. error: 500 with an Ollama error body. busy: 503 "server busy".
# cut: stream `cut_after` tokens, then drop the connection without ending the response.
# stream-error: stream `cut_after` tokens, then an `{"error": ...}` line (how Ollama
# reports a runner crash mid-answer). hang: accept the request and never answer.
# stall: stream `cut_after` tokens, then go silent with the connection open.
MODES = ("ok", "error", "busy", "cut", "stream-error", "hang", "stall")

DEFAULT_REPLY = "This is the fake model speaking. How can I help you today?"
OLLAMA_VERSION = "0.6.5"

_TOKEN = re.compile(r"\s*[^\s.,!?;:]+|\s*[.,!?;:]+|\s+")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}
_REASONS[503] = "Service Unavailable"


def tokenize(text: str) -> list[str]:
    """Split like a model's tokenizer roughly does: words with their leading space, punctuation apart."""
    return _TOKEN.findall(text) or ([text] if text else [])


def prompt_tokens(body: dict[str, Any]) -> int:
    """A rough count of the prompt's tokens: messages and tool definitions, as a model reads them."""
    text = "".join(str(m.get("content", "")) for m in body.get("messages") or [])
    text += json.dumps(body.get("tools") or [], separators=(",", ":")) if body.get("tools") else ""
    # About four characters a token for English and JSON (what llama/qwen tokenizers average).
    return max(1, len(text) // 4)


def echo_reply(messages: list[dict[str, Any]]) -> str:
    """A reply that repeats the last user message (handy to tell conversations apart)."""
    last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    return f"You said: {last}"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _canonical(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


@dataclass
class FakeRequest:
    """One HTTP request the fake received, and what became of it."""

    method: str
    path: str
    body: dict[str, Any]
    received_at: float = field(default_factory=time.monotonic)
    status: int = 200
    # Time spent loading the model for this request (only the first request per model pays it).
    load_seconds: float = 0.0
    tokens_sent: int = 0
    # Monotonic time each token line was written (the model's own timeline).
    token_times: list[float] = field(default_factory=list)
    text_sent: str = ""
    finished_at: float | None = None
    completed: bool = False
    # The client closed the connection before the response was complete.
    disconnected: bool = False
    # Tool calls the fake model made in its answer.
    tool_calls: list[ToolCall] = field(default_factory=list)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tools the client offered the model in this request."""
        return list(self.body.get("tools") or [])

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    @property
    def user_texts(self) -> list[str]:
        return [m.get("content", "") for m in self.messages if m.get("role") == "user"]

    def first_sentence_at(self) -> float | None:
        """When the token that ended the first sentence was sent."""
        text = ""
        for token, at in zip(tokenize(self.text_sent), self.token_times, strict=False):
            text += token
            if re.search(r"[.!?]\s*$", text):
                return at
        return None


class _Peer:
    """One client connection: buffered reads, and a way to notice the client leaving mid-response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = b""
        self._eof_watch: asyncio.Future[bytes] | None = None

    async def read_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        while b"\r\n\r\n" not in self.buffer:
            data = await self._read()
            if not data:
                return None
            self.buffer += data
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        while len(self.buffer) < length:
            data = await self._read()
            if not data:
                return None
            self.buffer += data
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return method, urlparse(target).path, headers, body

    async def _read(self) -> bytes:
        if self._eof_watch is not None:
            watch, self._eof_watch = self._eof_watch, None
            return await watch
        return await self.reader.read(65536)

    def gone(self) -> asyncio.Future[bytes]:
        """A future that completes when the client sends more or closes (b"")."""
        if self._eof_watch is None:
            self._eof_watch = asyncio.ensure_future(self.reader.read(65536))
        return self._eof_watch

    def closed_by_client(self) -> bool:
        watch = self._eof_watch
        return watch is not None and watch.done() and (watch.exception() is not None or not watch.result())

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


class FakeOllama:
    """In-process fake Ollama server. `await start()` / `stop()`, or `async with`."""

    def __init__(
        self,
        *,
        reply: Reply = DEFAULT_REPLY,
        tokens_per_second: float = 200.0,
        first_token_delay: float = 0.0,
        load_delay: float = 0.0,
        models: tuple[str, ...] = ("llama3.2:latest",),
        mode: str = "ok",
        cut_after: int = 3,
        fail_first: int = 0,
        fail_status: int = 503,
        host: str = "127.0.0.1",
        port: int = 0,
        capabilities: tuple[str, ...] = ("completion", "tools"),
    ) -> None:
        self.reply = reply
        self.capabilities = capabilities
        self.tokens_per_second = tokens_per_second
        self.first_token_delay = first_token_delay
        # Extra delay before the first answer for a model not loaded yet (warm-up removes it).
        self.load_delay = load_delay
        self.models = models
        self.mode = mode
        self.cut_after = cut_after
        # The next `fail_first` chat/generate requests get `fail_status`, then it recovers.
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.host = host
        self.port = port
        self.requests: list[FakeRequest] = []
        self.loaded: set[str] = set()
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._routes: dict[tuple[str, str], Callable[[_Peer, FakeRequest], Awaitable[None]]] = {
            ("POST", "/api/chat"): self._chat,
            ("POST", "/api/generate"): self._generate,
            ("GET", "/api/tags"): self._tags,
            ("GET", "/api/version"): self._version,
            ("POST", "/api/show"): self._show,
            ("GET", "/api/ps"): self._ps,
            ("GET", "/"): self._root,
            ("HEAD", "/"): self._root,
        }

    # -- life cycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> FakeOllama:
        self._server = await asyncio.start_server(self._on_client, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeOllama:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @staticmethod
    def unreachable_url() -> str:
        """A URL on which nothing listens (an Ollama that is not running)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        return f"http://127.0.0.1:{port}"

    # -- what the tests look at -------------------------------------------------------------------

    @property
    def chats(self) -> list[FakeRequest]:
        return [r for r in self.requests if r.path == "/api/chat"]

    async def wait_for(self, predicate: Callable[[FakeOllama], bool], timeout: float = 10.0) -> None:
        """Wait until `predicate(self)` holds (re-checked on every request event)."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"fake ollama: condition not met within {timeout:g} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))

    def _notify(self) -> None:
        self._changed.set()

    # -- HTTP -------------------------------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = _Peer(reader, writer)
        try:
            while True:
                request = await peer.read_request()
                if request is None:
                    break
                method, path, _headers, raw = request
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                record = FakeRequest(method, path, body if isinstance(body, dict) else {})
                self.requests.append(record)
                self._notify()
                route = self._routes.get((method, path))
                if route is None:
                    await self._send_json(peer, record, 404, {"error": "404 page not found"}, plain=True)
                else:
                    await route(peer, record)
                self._notify()
                if peer.closed_by_client() or writer.is_closing():
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            # Only `stop()` cancels these; ending quietly keeps asyncio from logging the
            # cancelled connection callback as an error.
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send_head(self, peer: _Peer, status: int, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
        lines += [f"{k}: {v}" for k, v in {"Date": _http_date(), **headers}.items()]
        await peer.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def _send_json(
        self, peer: _Peer, record: FakeRequest, status: int, body: dict[str, Any], *, plain: bool = False
    ) -> None:
        data = (json.dumps(body) if not plain else body.get("error", "")).encode()
        content_type = "text/plain" if plain else "application/json; charset=utf-8"
        record.status = status
        await self._send_head(peer, status, {"Content-Type": content_type, "Content-Length": str(len(data))})
        await peer.send(data)
        record.completed, record.finished_at = True, time.monotonic()

    # -- endpoints --------------------------------------------------------------------------------

    def _has_model(self, name: str | None) -> bool:
        return bool(name) and _canonical(str(name)) in {_canonical(m) for m in self.models}

    def _model_entry(self, name: str) -> dict[str, Any]:
        return {
            "name": _canonical(name),
            "model": _canonical(name),
            "modified_at": "2025-01-01T00:00:00Z",
            "size": 2019393189,
            "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "3.2B",
                "quantization_level": "Q4_K_M",
            },
        }

    async def _root(self, peer: _Peer, record: FakeRequest) -> None:
        await self._send_json(peer, record, 200, {"error": "Ollama is running"}, plain=True)

    async def _version(self, peer: _Peer, record: FakeRequest) -> None:
        await self._send_json(peer, record, 200, {"version": OLLAMA_VERSION})

    async def _tags(self, peer: _Peer, record: FakeRequest) -> None:
        await self._send_json(peer, record, 200, {"models": [self._model_entry(m) for m in self.models]})

    async def _ps(self, peer: _Peer, record: FakeRequest) -> None:
        running = [
            {**self._model_entry(m), "expires_at": _now(), "size_vram": 0} for m in sorted(self.loaded)
        ]
        await self._send_json(peer, record, 200, {"models": running})

    async def _show(self, peer: _Peer, record: FakeRequest) -> None:
        name = record.body.get("model") or record.body.get("name")
        if not self._has_model(name):
            await self._send_json(peer, record, 404, {"error": f"model '{name}' not found"})
            return
        entry = self._model_entry(str(name))
        body = {
            "license": "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT",
            "modelfile": f"FROM {entry['name']}\n",
            "parameters": 'stop "<|eot_id|>"',
            "template": "{{ .Prompt }}",
            "details": entry["details"],
            "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
            "capabilities": list(self.capabilities),
            "modified_at": entry["modified_at"],
        }
        await self._send_json(peer, record, 200, body)

    async def _chat(self, peer: _Peer, record: FakeRequest) -> None:
        await self._answer(peer, record, chat=True)

    async def _generate(self, peer: _Peer, record: FakeRequest) -> None:
        await self._answer(peer, record, chat=False)

    async def _answer(self, peer: _Peer, record: FakeRequest, *, chat: bool) -> None:
        model = str(record.body.get("model") or "")
        if not model:
            await self._send_json(peer, record, 400, {"error": "model is required"})
            return
        if not self._has_model(model):
            error = f'model "{model}" not found, try pulling it first'
            await self._send_json(peer, record, 404, {"error": error})
            return
        if self.fail_first > 0:
            self.fail_first -= 1
            await self._send_error_status(peer, record, self.fail_status)
            return
        if self.mode in ("error", "busy"):
            await self._send_error_status(peer, record, 500 if self.mode == "error" else 503)
            return

        load = 0.0
        if _canonical(model) not in self.loaded:
            load = self.load_delay
            self.loaded.add(_canonical(model))
        record.load_seconds = load
        messages = record.messages
        prompt = record.body.get("prompt")
        if not chat and not prompt and not messages:
            # Ollama: a generate request with no prompt just loads the model (warm-up).
            if load and await self._wait_or_gone(peer, load):
                record.disconnected = True
                return
            body = {"model": model, "created_at": _now(), "response": "", "done": True, "done_reason": "load"}
            await self._send_json(peer, record, 200, body)
            return
        if self.mode == "hang":
            if await self._wait_or_gone(peer, None):
                record.disconnected = True
            return

        answer = self.reply(messages) if callable(self.reply) else self.reply
        if not chat and prompt:
            answer = self.reply([{"role": "user", "content": prompt}]) if callable(self.reply) else answer
        if isinstance(answer, list):
            await self._tool_calls(peer, record, model, answer, load)
            return
        reply = answer
        tokens = tokenize(reply)
        if record.body.get("stream", True):
            await self._stream(peer, record, model, tokens, load, chat=chat)
        else:
            if await self._wait_or_gone(peer, load + self.first_token_delay + len(tokens) * self._interval()):
                record.disconnected = True
                return
            record.tokens_sent, record.text_sent = len(tokens), reply
            body = self._final(model, len(tokens), record, load, chat)
            body.update(self._piece(model, reply, chat), done=True)
            await self._send_json(peer, record, 200, body)

    async def _tool_calls(
        self, peer: _Peer, record: FakeRequest, model: str, calls: list[ToolCall], load: float
    ) -> None:
        """Ollama's shape: one message with every call (empty content), then the final object."""
        message = {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": f"call_{n}", "function": {"index": n, "name": c.name, "arguments": c.arguments}}
                for n, c in enumerate(calls)
            ],
        }
        record.tool_calls = list(calls)
        if record.body.get("stream", True):
            await self._send_head(
                peer, 200, {"Content-Type": "application/x-ndjson", "Transfer-Encoding": "chunked"}
            )
            if await self._wait_or_gone(peer, load + self.first_token_delay + self._interval()):
                record.disconnected = True
                return
            piece = {"model": model, "created_at": _now(), "message": message, "done": False}
            final = self._final(model, 1, record, load, True)
            for obj in (piece, final):
                data = json.dumps(obj).encode() + b"\n"
                await peer.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await peer.send(b"0\r\n\r\n")
        else:
            final = self._final(model, 1, record, load, True)
            final["message"] = message
            await self._send_json(peer, record, 200, final)
        record.completed, record.finished_at = True, time.monotonic()

    async def _send_error_status(self, peer: _Peer, record: FakeRequest, status: int) -> None:
        text = {
            503: "server busy, please try again.  maximum pending requests exceeded",
            500: "llama runner process has terminated: signal: killed",
        }.get(status, "unexpected server error")
        await self._send_json(peer, record, status, {"error": text})

    def _interval(self) -> float:
        return 1.0 / self.tokens_per_second if self.tokens_per_second > 0 else 0.0

    def _piece(self, model: str, text: str, chat: bool) -> dict[str, Any]:
        if chat:
            return {
                "model": model,
                "created_at": _now(),
                "message": {"role": "assistant", "content": text},
                "done": False,
            }
        return {"model": model, "created_at": _now(), "response": text, "done": False}

    def _final(self, model: str, count: int, record: FakeRequest, load: float, chat: bool) -> dict[str, Any]:
        total = time.monotonic() - record.received_at
        final = self._piece(model, "", chat)
        final.update(
            done=True,
            done_reason="stop",
            total_duration=int(total * 1e9),
            load_duration=int(load * 1e9),
            prompt_eval_count=prompt_tokens(record.body),
            prompt_eval_duration=int(0.001 * 1e9),
            eval_count=count,
            eval_duration=int(max(total - load, 0.0) * 1e9),
        )
        if not chat:
            final["context"] = [1, 2, 3]
        return final

    async def _wait_or_gone(self, peer: _Peer, seconds: float | None) -> bool:
        """Sleep, but return True early if the client closes the connection."""
        watch = peer.gone()
        if seconds is not None and seconds <= 0:
            return peer.closed_by_client()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(watch), seconds)
        return peer.closed_by_client()

    async def _stream(
        self, peer: _Peer, record: FakeRequest, model: str, tokens: list[str], load: float, *, chat: bool
    ) -> None:
        async def line(obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode() + b"\n"
            await peer.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        await self._send_head(
            peer, 200, {"Content-Type": "application/x-ndjson", "Transfer-Encoding": "chunked"}
        )
        start = time.monotonic() + load + self.first_token_delay
        try:
            for index, token in enumerate(tokens):
                if self.mode in ("cut", "stream-error", "stall") and index >= self.cut_after:
                    break
                # Paced against the start, so a slow event loop does not slow the model down.
                if await self._wait_or_gone(peer, start + index * self._interval() - time.monotonic()):
                    record.disconnected = True
                    return
                await line(self._piece(model, token, chat))
                record.tokens_sent += 1
                record.text_sent += token
                record.token_times.append(time.monotonic())
                self._notify()
            if self.mode == "stall":
                if await self._wait_or_gone(peer, None):
                    record.disconnected = True
                return
            if self.mode == "cut":
                # Drop the connection in the middle of the chunked body.
                peer.writer.transport.abort()
                record.finished_at = time.monotonic()
                return
            if self.mode == "stream-error":
                await line({"error": "an error was encountered while running the model: unexpected EOF"})
            else:
                await line(self._final(model, len(tokens), record, load, chat))
            await peer.send(b"0\r\n\r\n")
            record.completed, record.finished_at = True, time.monotonic()
        except ConnectionError:
            record.disconnected = True


def _http_date() -> str:
    return datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


async def _main(args: argparse.Namespace) -> None:
    host, port = args.host, args.port
    if args.uri:  # lets tests.support.services.ServiceProcess start it like any service
        parsed = urlparse(args.uri)
        host, port = parsed.hostname or host, parsed.port or port
    fake = FakeOllama(
        reply=echo_reply if args.echo else args.reply,
        tokens_per_second=args.tokens_per_second,
        first_token_delay=args.first_token_delay,
        load_delay=args.load_delay,
        models=tuple(args.model or ["llama3.2:latest"]),
        mode=args.mode,
        host=host,
        port=port,
    )
    await fake.start()
    print(f"fake ollama is listening on {fake.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Ollama server (Ollama's HTTP wire format)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--uri", help="tcp://HOST:PORT (overrides --host/--port)")
    parser.add_argument("--reply", default=DEFAULT_REPLY, help="Text every chat answers with")
    parser.add_argument("--echo", action="store_true", help="Answer 'You said: <last user message>'")
    parser.add_argument("--tokens-per-second", type=float, default=200.0)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--load-delay", type=float, default=0.0)
    parser.add_argument("--model", action="append", help="A pulled model (repeatable; default llama3.2)")
    parser.add_argument("--mode", choices=MODES, default="ok")
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
