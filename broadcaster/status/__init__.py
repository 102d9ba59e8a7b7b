"""How the stream is doing: the one assessment /health and the state events both read.

In: facts from the publisher, the uploader and the watcher; viewer pages' heartbeats and playback
reports (audience.py, playback.py). Out: the StreamState (idle, live, degraded, ended), /health's body,
the event hub that streams `segment` and `state` events, and the viewers' figures for /metrics
(playback_metrics.py).
Plain asyncio: no HTTP here (http/ serves it).
Never: change the pipeline it observes.
"""
