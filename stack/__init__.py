"""The one-command stack: STT, TTS, conversation and a satellite, started and stopped together."""
