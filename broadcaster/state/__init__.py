"""Durable memory: STATE_DIR's state file and lock, and the checks every saved value passes.

In: the publisher's memory with each save, and a snapshot of every other part that registers
(snapshots.py). Out: state.json, written atomically, and on start the parts restored from it, or
nothing restored when any part refuses its share.
Never: trust what it reads (validate.py checks each value at the boundary), or crash on a bad file:
it is set aside and reported.
"""
