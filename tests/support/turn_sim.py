"""The STT's end-of-turn decision on a recording, with the real models and none of the timing.

`decide` feeds audio in 20 ms chunks to the service's own VAD (Endpointer) and turn policy
(TurnPolicy), and whenever the service would start something in the background (the
speculative final decode after 0.15 s of silence, the turn detector after 0.2 s) it runs it
at once, on the real Whisper model and the real Smart Turn model. Every answer is there the
moment it is asked for, which is the hardest case for a pause: a busy machine can only
answer later, when the user may already have gone on. So a turn that does not end inside a
hesitation here does not end there in the service either.
"""

from __future__ import annotations

from dataclasses import dataclass

from wyoming_core.audio import pcm16_to_float
from wyoming_core.turn_detector import TurnDetector
from wyoming_stt.endpoint import FRAME_SECONDS, DetectorPool, Endpointer
from wyoming_stt.engine import WhisperEngine
from wyoming_stt.turn import TurnLimits, TurnPolicy

RATE = 16000
CHUNK = RATE // 50 * 2  # 20 ms, as the satellite sends
_PAD = 0.3  # the session's padding around the speech for the decoder


@dataclass(frozen=True)
class Decision:
    ended_at: float | None  # seconds into the audio the turn ended (None: never)
    reason: str  # "turn-detector", "silence" or ""
    text: str  # the transcript the turn ended with
    evaluations: int  # turn detector runs


async def decide(
    audio: bytes,
    engine: WhisperEngine,
    detector: TurnDetector,
    limits: TurnLimits | None = None,
    endpoint_silence: float = 0.15,
    language: str = "en",
    request_start: float = 0.0,
) -> Decision:
    """Where in `audio` (16 kHz mono PCM16) the service would end the turn, and why;
    `request_start` as a client's `context.request_starts_at` (its wake word before it)."""
    endpoint = Endpointer(0.5, endpoint_silence, DetectorPool())
    policy = TurnPolicy(limits or TurnLimits(), True, request_start)
    heard_audio = bytearray()
    text: str | None = None
    confidence = 0.0
    evaluations = 0
    try:
        for start in range(0, len(audio), CHUNK):
            chunk = audio[start : start + CHUNK]
            heard_audio.extend(chunk)
            if endpoint.feed(chunk):
                policy.speech_resumed()
                text = None
            if not endpoint.has_speech:
                continue
            silence = endpoint.silence_seconds
            if endpoint.ended and text is None:
                span = endpoint.speech_span(_PAD)
                assert span is not None
                decoded = await engine.transcribe(
                    pcm16_to_float(bytes(heard_audio[span[0] : span[1]])), language
                )
                text, confidence = decoded.text, decoded.confidence
            if policy.wants_evaluation(silence):
                policy.asked = True
                evaluations += 1
                policy.probability = detector.complete_probability(bytes(heard_audio[-8 * RATE * 2 :]))
            last = endpoint.last_speech
            spoken = (last + 1) * FRAME_SECONDS if last is not None else 0.0
            if text is not None and policy.ended(silence, text, language, confidence, spoken):
                return Decision(len(heard_audio) / (2 * RATE), policy.reason, text, evaluations)
        return Decision(None, "", text or "", evaluations)
    finally:
        endpoint.release()
