"""How the stream is doing: the one assessment /health and the state events both read.

In: facts from the publisher, the uploader and the watcher; viewer pages' heartbeats and reports.
Out: the StreamState, /health's body, the event hub, and the viewers' figures for /metrics (no HTTP here).
Never: change the pipeline it observes.
"""
