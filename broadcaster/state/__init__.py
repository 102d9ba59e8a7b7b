"""Durable memory: STATE_DIR's state file and lock, and the checks every saved value passes.

In: the publisher's memory with each save, and a snapshot of every other part that registers
(snapshots.py); the long lists in both come as Tails (tails.py), values read by the save whenever it
runs. Out: STATE_DIR/state.json, rewritten atomically, with state.journal's lines after it (most saves
append one line with only what changed: journal.py), STATE_DIR/served while saves fail (served.py), and
on start the parts restored from them, or nothing restored when any part refuses its share.
Never: trust what it reads (validate.py checks each value at the boundary), or crash on a bad file:
it is set aside and reported.
"""
