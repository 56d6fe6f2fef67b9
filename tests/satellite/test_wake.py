"""The wake word fires on itself and never on two minutes of ordinary speech.

Audio is fed straight into the detector object, faster than real time.
"""

from __future__ import annotations

import time

from satellite.settings import WakeSettings
from satellite.wake import LocalWake
from tests.satellite.helpers import silence, speech

CHUNK = 320  # 10 ms

ORDINARY = [
    "Good morning. The weather today will be cloudy with a chance of rain in the afternoon.",
    "Could you remind me to buy milk, eggs and bread on the way home from work tonight?",
    "The meeting has been moved to Thursday at three, so please update your calendars.",
    "My neighbour's dog barked all night, and I barely slept at all, which is annoying.",
    "We drove along the coast for hours and stopped at a small village for lunch.",
    "She read the whole novel in one weekend and then started the sequel straight away.",
    "The train to the city was delayed by twenty minutes because of signal problems.",
    "Turn left at the second roundabout and the restaurant is on your right.",
    "I think the children would enjoy the science museum more than the art gallery.",
    "Our internet connection keeps dropping, so I called the provider this morning.",
    "He planted tomatoes, beans and a few sunflowers in the garden last spring.",
    "The recipe needs two cups of flour, a pinch of salt and some warm water.",
    "Please close the window, it is getting rather cold in here this evening.",
    "The football match ended in a draw after a very exciting second half.",
    "They are painting the kitchen yellow and replacing the old cupboards.",
    "Remember that the library closes early on Saturdays during the summer.",
    "I have never seen so many stars as on that night in the mountains.",
    "The doctor said to rest for a few days and drink plenty of water.",
    "Jarvis Cocker was the singer of a band. Hey, look at that bird over there.",
    "Alexander and Nabulsi met for coffee near the old harbour on Monday.",
]


def _feed(wake: LocalWake, audio: bytes) -> list[tuple[float, str]]:
    hits = []
    for start in range(0, len(audio), CHUNK):
        name = wake.process(audio[start : start + CHUNK])
        if name:
            hits.append((start / 32000, name))
    return hits


def test_no_wake_on_two_minutes_of_ordinary_speech() -> None:
    wake = LocalWake(WakeSettings(names=("okay_nabu", "hey_jarvis", "alexa", "hey_mycroft")))
    parts: list[bytes] = []
    seconds = 0.0
    while seconds < 120.0:
        for sentence in ORDINARY:
            parts += [speech(sentence), silence(0.4)]
            seconds += len(parts[-2]) / 32000 + 0.4
    audio = b"".join(parts)
    start = time.process_time()
    hits = _feed(wake, audio)
    cpu = time.process_time() - start
    assert hits == [], f"false wakes at {hits}"
    # Not deaf: the same detector, right after, still hears its wake words.
    for phrase, name in (
        ("Hey Jarvis, what time is it?", "hey_jarvis"),
        ("Okay Nabu, lights on.", "okay_nabu"),
    ):
        heard = _feed(wake, silence(2.5) + speech(phrase) + silence(1.0))
        assert [n for _, n in heard] == [name], (phrase, heard)
    # Informative only (CPU is shared): the benchmark holds the real target.
    print(f"wake word CPU: {100 * cpu / (len(audio) / 32000):.2f} % of a core")


def test_wake_word_fires_once_per_utterance() -> None:
    wake = LocalWake(WakeSettings(names=("hey_jarvis",), refractory=2.0))
    audio = silence(0.5) + speech("Hey Jarvis, what time is it?") + silence(1.0)
    hits = _feed(wake, audio * 2)
    assert [name for _, name in hits] == ["hey_jarvis", "hey_jarvis"]


def test_open_wake_word_models_work_too() -> None:
    wake = LocalWake(WakeSettings(names=("oww:hey_jarvis",)))
    audio = silence(0.5) + speech("Hey Jarvis, what time is it?") + silence(1.0)
    assert [name for _, name in _feed(wake, audio)] == ["hey_jarvis"]
