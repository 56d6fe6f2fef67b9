"""Wyoming conversation ("handle") service on Ollama: streamed sentences, lasting memory, spoken failures."""

__version__ = "0.1.0"
