"""How the stream is doing: the one assessment /health and the state events both read.

In: facts from the publisher, the uploader and the watcher. Out: the StreamState (idle, live,
degraded, ended), /health's body, and the event hub that streams `segment` and `state` events.
Plain asyncio: no HTTP here (http/ serves it).
Never: change the pipeline it observes.
"""
