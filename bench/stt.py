"""STT benchmark: streamed requests with a 0.7 s silence tail vs a plain one-shot transcription.

Utterances are sent at real-time pace followed by 0.7 s of silence, as a satellite or Home
Assistant sends them. Reported: audio-stop -> transcript, end of speech -> transcript,
real-time factor and word error rate, and the same figures for a one-shot transcription of the
same audio with the same model and settings in the same run (what a server without
endpointing does after audio-stop).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import Figure, parser, report
from tests.support.services import ServiceProcess
from tests.support.speech import piper_speech, silence
from tests.support.wer import wer
from wyoming_core.audio import pcm16_to_float, to_stt_format
from wyoming_core.client import transcribe

SENTENCES = [
    "What time is it?",
    "Turn on the lights in the kitchen.",
    "Set a timer for ten minutes.",
    "What is the weather like tomorrow?",
    "Play some relaxing music in the living room.",
    "Remind me to call my mother at six in the evening.",
]
TAIL = 0.7


async def streamed(uri: str) -> tuple[list[float], list[float], list[float], float]:
    stop_to_final, speech_end_to_final, rtf, errors = [], [], [], []
    for sentence in SENTENCES:
        pcm, fmt = piper_speech(sentence)
        audio = silence(0.2, fmt) + pcm + silence(TAIL, fmt)
        result = await transcribe(uri, audio, fmt, language="en", realtime=True, chunk_seconds=0.05)
        lag = result.final_at - result.audio_stop_at
        stop_to_final.append(lag)
        speech_end_to_final.append(lag + TAIL)
        rtf.append(lag / (len(pcm) / fmt.bytes_per_second))
        errors.append(wer(sentence, result.text))
    return stop_to_final, speech_end_to_final, rtf, statistics.mean(errors)


def one_shot(model_dir: str) -> tuple[list[float], list[float], float]:
    from faster_whisper import WhisperModel

    from wyoming_core.workers import default_workers

    model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=default_workers())
    times, rtf, errors = [], [], []
    for sentence in SENTENCES:
        pcm, fmt = piper_speech(sentence)
        audio = pcm16_to_float(to_stt_format(silence(0.2, fmt) + pcm + silence(TAIL, fmt), fmt))
        started = time.monotonic()
        segments, _info = model.transcribe(
            audio, language="en", beam_size=1, without_timestamps=True, condition_on_previous_text=False
        )
        text = " ".join(s.text.strip() for s in segments)
        elapsed = time.monotonic() - started
        times.append(elapsed)
        rtf.append(elapsed / (len(pcm) / fmt.bytes_per_second))
        errors.append(wer(sentence, text))
    return times, rtf, statistics.mean(errors)


async def main() -> None:
    args = parser(__doc__ or "").parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        service = ServiceProcess("wyoming_stt", "--data-dir", data_dir, "--model", "base", "--language", "en")
        service.start()
        try:
            service.wait_listening()
            await service.wait_ready()
            await transcribe(
                service.uri, silence(1.0, piper_speech("Hi.")[1]), piper_speech("Hi.")[1]
            )  # warm
            stop, speech_end, rtf, stream_wer = await streamed(service.uri)
        finally:
            service.stop()
        shot, shot_rtf, shot_wer = one_shot(str(Path(data_dir) / "base"))

    med = statistics.median
    ratio = med(stop) / med(shot)
    figures = [
        Figure("audio-stop -> transcript (streamed, median)", med(stop) * 1000, "ms"),
        Figure("end of speech -> transcript (streamed, median)", med(speech_end) * 1000, "ms"),
        Figure("one-shot transcription after audio-stop (median)", med(shot) * 1000, "ms"),
        Figure("audio-stop -> transcript / one-shot", ratio * 100, "%", target=25),
        Figure("real-time factor after audio-stop (streamed)", med(rtf), "x"),
        Figure("real-time factor (one-shot)", med(shot_rtf), "x"),
        Figure("word error rate (streamed)", stream_wer * 100, "%", target=round(shot_wer * 100, 1)),
        Figure("word error rate (one-shot)", shot_wer * 100, "%"),
    ]
    report(figures, "STT (whisper base, int8, 2 cores)", args.json)


if __name__ == "__main__":
    asyncio.run(main())
