"""When each stage of a standalone turn happened, logged as one `turn-timing` line."""

from __future__ import annotations

import logging
from dataclasses import dataclass

_LOGGER = logging.getLogger(__name__)


@dataclass
class Timing:
    end_of_speech: float = 0.0
    transcript: float = 0.0
    first_sentence: float = 0.0
    first_chunk: float = 0.0  # first TTS audio chunk received
    first_audio: float = 0.0  # ... and when it starts to sound

    def stages(self) -> dict[str, object]:
        """Seconds from the end of speech to the transcript, the first sentence and the first
        audio (None: not reached), for the status page's chart."""

        def since_eos(at: float) -> float | None:
            return round(at - self.end_of_speech, 3) if at and self.end_of_speech else None

        return {
            "transcript": since_eos(self.transcript),
            "first_sentence": since_eos(self.first_sentence),
            "first_audio": since_eos(self.first_audio),
        }

    def log(self) -> None:
        if not (self.end_of_speech and self.transcript and self.first_sentence and self.first_audio):
            return
        model = self.first_sentence - self.transcript
        total = self.first_audio - self.end_of_speech
        # The benchmark parses this line.
        _LOGGER.info(
            "turn-timing eos_to_transcript=%.3f model_first_sentence=%.3f tts_first_chunk=%.3f "
            "chunk_to_sound=%.3f sentence_to_audio=%.3f eos_to_audio=%.3f eos_to_audio_excl_model=%.3f "
            "eos_at=%.3f first_audio_at=%.3f",
            self.transcript - self.end_of_speech,
            model,
            self.first_chunk - self.first_sentence,
            self.first_audio - self.first_chunk,
            self.first_audio - self.first_sentence,
            total,
            total - model,
            self.end_of_speech,
            self.first_audio,
        )
