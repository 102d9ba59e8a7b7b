"""Content steering: which delivery pathway players use, decided on the service's own evidence.

In: the pathways (playlist/pathway.py records, built from PATHWAYS), how each bucket's uploads fare
(bucket/: refused, waiting), the service's probe of each bucket's public URL, and what viewers' pages
report of their fetches (claims: a report may make the service probe at once, nothing more). Out: the
pathway priority rendered into the steering manifest, the plan each pathway's playlists follow, the
multivariant playlists that name every pathway, and one log line, metric and /health reason per switch.
Never: move players off a bucket the service sees serving, whatever any number of clients report; hold
players away once the evidence clears; or name a file from a URL.
"""
