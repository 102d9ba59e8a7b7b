"""The viewers' WebTorrent tracker (P2P_TRACKERS): Node files, not Python.

In: viewers' WebSocket announces, with their WebRTC offers, for the service's own swarm(s) (swarms.mjs).
Out: offers and answers relayed between viewers of one swarm; no video passes through it.
tracker.mjs reads the environment and runs server.mjs's createTracker(options) (the tracker as a type,
its rules tested in-process by node-tests/*.test.mjs with `node --test`: tests/test_tracker_rules.py).
With its package.json and lock file, and a pm2 process file, shipped in the wheel so that
`hls-broadcaster demo --p2p` runs them (broadcaster/demo/tracker.py); an operator copies this folder to
the VM (docs/p2p.md).
Never: a public tracker by default, or a swarm other than the service's.
"""
