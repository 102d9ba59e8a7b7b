"""Private streams' keys: viewer tokens, invite links and the invites file (PRIVATE=true).

In: PRIVATE_SECRET (every key derived from it), the pass-phrase, the invites file, the time.
Out: viewer tokens, invites, and the one answer to "may this request in?" and "give me a token"
(grants.py) that the service's doors and `hls-broadcaster invite` use.
Never: store a token, compare a secret in variable time, or say anything about the stream.
"""
