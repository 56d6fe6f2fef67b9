"""Wyoming text-to-speech service on piper: streaming, every voice under one name, parallel synthesis."""

__version__ = "0.1.0"
