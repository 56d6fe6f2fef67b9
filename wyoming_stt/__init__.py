"""Wyoming speech-to-text service on faster-whisper, with streamed partials and endpointing."""

__version__ = "0.1.0"
