"""The viewers' WebTorrent tracker (P2P_TRACKERS): Node files, not Python.

In: viewers' WebSocket announces, with their WebRTC offers, for the service's own swarm(s) (swarms.mjs).
Out: offers and answers relayed between viewers of one swarm; no video passes through it.
tracker.mjs runs server.mjs's createTracker(options); shipped in the wheel for `demo --p2p`, and copied to
the VM by the operator (docs/p2p.md).
Never: a public tracker by default, or a swarm other than the service's.
"""
