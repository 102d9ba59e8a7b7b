"""The VM's pathway: what the VM serves while players are steered to it, and how.

In: each finished segment's version (held.py), where each is listed, the steering policy's word on the
first bucket. Out: GET <folder>/vm/<n>/<file> (segments.py): a redirect, or bytes within the VM's budget.
Never: answer a name no VM playlist listed, send bytes while the bucket serves but to a client whose own
page reported failures there, or let one client spend another's share.
"""
