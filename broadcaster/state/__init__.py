"""Durable memory: STATE_DIR's state file and lock, and the checks every saved value passes.

In: the publisher's memory with each save, and a snapshot of every other part that registers
(snapshots.py), their long lists as Tails (tails.py). Out: STATE_DIR/state.json, rewritten atomically,
with state.journal's lines after it (journal.py), STATE_DIR/served while saves fail (served.py), and on
start the parts restored from them, or none when any part refuses its share.
Never: trust what it reads (validate.py checks each value at the boundary), or crash on a bad file:
it is set aside and reported.
"""
