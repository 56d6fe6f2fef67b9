"""Room satellite: wake word, VAD, streamed turns, Home Assistant link and barge-in."""
