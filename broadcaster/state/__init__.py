"""Durable memory: STATE_DIR's state file and lock, and the checks every saved value passes.

In: a snapshot of every part that registers (snapshots.py), their long lists as Tails. Out: state.json with
state.journal's lines after it (journal.py), STATE_DIR/served while saves fail (served.py), and on start
the parts restored from them, or none when any part refuses its share.
Never: trust what it reads (validate.py), or crash on a bad file: it is set aside and reported.
"""
