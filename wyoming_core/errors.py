"""Every `error` event code the services send, in one place, and which of them mean "this
instance is at fault: try another" (what a client pool fails over on)."""

from __future__ import annotations

# The protocol (wyoming_core/protocol.py): a client sent something unreadable.
HEADER_TOO_LARGE = "header-too-large"
INVALID_JSON = "invalid-json"
MISSING_TYPE = "missing-type"
INVALID_LENGTH = "invalid-length"
DATA_TOO_LARGE = "data-too-large"
PAYLOAD_TOO_LARGE = "payload-too-large"
IDLE_TIMEOUT = "idle-timeout"
TRUNCATED_EVENT = "truncated-event"

# Admission (wyoming_core/admission.py): the service refuses for load.
OVERLOADED = "overloaded"
TOO_MANY_CONNECTIONS = "too-many-connections"
TOO_MANY_REQUESTS = "too-many-requests"

# Requests.
INTERNAL_ERROR = "internal-error"
OUT_OF_ORDER = "out-of-order"
BAD_REQUEST = "bad-request"
UNSUPPORTED_LANGUAGE = "unsupported-language"
UNSUPPORTED_AUDIO_FORMAT = "unsupported-audio-format"
AUDIO_TOO_LONG = "audio-too-long"
AUDIO_CHUNK_TOO_LONG = "audio-chunk-too-long"
MODEL_UNAVAILABLE = "model-unavailable"
VOICE_NOT_FOUND = "voice-not-found"
VOICE_UNAVAILABLE = "voice-unavailable"
SPEAKER_NOT_FOUND = "speaker-not-found"
TEXT_TOO_LONG = "text-too-long"
SATELLITE_IN_USE = "satellite-in-use"

# The instance, not the request, is at fault: another instance may well answer.
INSTANCE_FAULTS = frozenset(
    {INTERNAL_ERROR, MODEL_UNAVAILABLE, VOICE_UNAVAILABLE, OVERLOADED, TOO_MANY_CONNECTIONS}
)
