"""The viewers' WebTorrent tracker (P2P_TRACKERS): Node files, not Python.

tracker.mjs with its package.json and lock file, and a pm2 process file, shipped in the wheel so that
`hls-broadcaster demo --p2p` runs them (broadcaster/demo/tracker.py); an operator copies this folder to
the VM (README, "Viewer-to-viewer (P2P)"). Never: a public tracker by default.
"""
