"""The VM's pathway: what the VM serves while players are steered to it, and how.

In: each finished segment's version (held.py: Owncast's file while it is that version, a copy kept under
STATE_DIR/segments only after a failed upload, until every bucket has it), where the publisher lists each
segment (bucket_copy.Located), the steering policy's word on the first bucket (and the steering loop's
doubt of it after one failed probe), VM_SEGMENT_MBPS. Out: the route GET <folder>/vm/<n>/<file>
(segments.py): a redirect to the bucket's copy while the bucket serves (bucket_copy.py), or the bytes
within the VM's budget (budget.py), with conditional requests and one byte range (ranges.py); wired by
http/steered.py. How far the VM's pathway lists is the publisher's (publish/).
Never: answer a name no VM playlist listed, send bytes while the bucket serves but to a client whose own
page reported failures there, or let one client spend another's share.
"""
