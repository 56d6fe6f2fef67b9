"""Conversation benchmark: what the service adds on top of the model.

A fake Ollama (tests/support/fake_ollama.py, in this process) streams a
three-sentence reply at a fixed token rate after a fixed first-token delay, as a
CPU model would. The service runs as a process and talks to it with the real
`ollama` client. Measured per question, on one monotonic clock:

- transcript -> first `handled-chunk` and -> final `handled`;
- the model's own time to the end of its first sentence (request received by
  the fake -> the token that ends the sentence sent);
- overhead = transcript -> first chunk, minus the model's own time: prompt and
  memory work, HTTP, token parsing, sentence cutting, Wyoming writing.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass

from wyoming.asr import Transcript
from wyoming.handle import Handled, HandledChunk, HandledStop

from bench.common import Figure, ms, p90, parser, report
from tests.support.fake_ollama import FakeOllama
from tests.support.services import ServiceProcess
from wyoming_core.client import Connection

REPLY = (
    "It is twenty one degrees inside and sunny outside. The rain comes back tomorrow. "
    "Is there anything else I can do for you?"
)


@dataclass(frozen=True)
class Sample:
    first_chunk: float
    final: float
    model_first_sentence: float

    @property
    def overhead(self) -> float:
        return self.first_chunk - self.model_first_sentence


async def ask(uri: str, fake: FakeOllama, conversation: str) -> Sample:
    before = len(fake.chats)
    # Not a device command: those are answered without the model (bench/home.py measures them).
    question = f"What is the weather like ({conversation})?"
    async with Connection(uri, timeout=60) as conn:
        started = time.monotonic()
        await conn.send(Transcript(text=question, context={"conversation_id": conversation}))
        first_chunk = final = 0.0
        while True:
            event = await conn.receive()
            now = time.monotonic() - started
            if HandledChunk.is_type(event.type) and not first_chunk:
                first_chunk = now
            elif Handled.is_type(event.type):
                final = now
            elif HandledStop.is_type(event.type):
                break
    chat = [c for c in fake.chats[before:] if c.user_texts[-1:] == [question]][-1]
    sentence_end = chat.first_sentence_at()
    if not first_chunk or not final or sentence_end is None:
        raise RuntimeError(f"incomplete answer: chunk={first_chunk} final={final}")
    return Sample(first_chunk, final, sentence_end - chat.received_at)


async def main() -> None:
    cli = parser(__doc__ or "")
    cli.add_argument("--repeat", type=int, default=20, help="Questions per figure")
    cli.add_argument("--tokens-per-second", type=float, default=20.0, help="The fake model's speed")
    cli.add_argument("--first-token-delay", type=float, default=0.3, help="The fake model's prompt time")
    args = cli.parse_args()
    async with FakeOllama(
        reply=REPLY, tokens_per_second=args.tokens_per_second, first_token_delay=args.first_token_delay
    ) as fake:
        with tempfile.TemporaryDirectory(prefix="bench-llm-") as data_dir:
            service = ServiceProcess("wyoming_llm", "--ollama-url", fake.url, "--data-dir", data_dir).start()
            try:
                service.wait_listening()
                await service.wait_ready(marker="is loaded and warm")
                await ask(service.uri, fake, "warm-up")
                # Each question in its own conversation, and again with memory growing in one.
                single = [await ask(service.uri, fake, f"bench-{n}") for n in range(args.repeat)]
                remembered = [await ask(service.uri, fake, "bench-memory") for _ in range(args.repeat)]
                concurrent: list[Sample] = []
                for round_ in range(max(1, args.repeat // 4)):
                    concurrent += await asyncio.gather(
                        *(ask(service.uri, fake, f"bench-c{round_}-{n}") for n in range(4))
                    )
                rss = service.rss_mb()
            finally:
                service.stop()

    rate = f"{args.tokens_per_second:g} tokens/s, first token after {args.first_token_delay:g} s"
    figures = [
        Figure("transcript -> first handled-chunk (median)", ms([s.first_chunk for s in single]), "ms"),
        Figure("transcript -> final handled (median)", ms([s.final for s in single]), "ms"),
        Figure(
            "model's own time to end of first sentence", ms([s.model_first_sentence for s in single]), "ms"
        ),
        Figure("service overhead to first sentence (median)", ms([s.overhead for s in single]), "ms", 50),
        Figure("service overhead to first sentence (p90)", p90([s.overhead * 1000 for s in single]), "ms"),
        Figure(
            "overhead, one conversation with memory (median)", ms([s.overhead for s in remembered]), "ms", 50
        ),
        Figure("overhead, 4 concurrent conversations (median)", ms([s.overhead for s in concurrent]), "ms"),
        Figure("service memory (RSS)", rss, "MB"),
        Figure("machine load average (1 min, shared machine)", os.getloadavg()[0], ""),
    ]
    report(figures, f"Conversation (wyoming_llm on a fake Ollama at {rate})", args.json)


if __name__ == "__main__":
    asyncio.run(main())
