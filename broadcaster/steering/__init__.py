"""Content steering: which delivery pathway players use, decided on the service's own evidence.

In: the pathways (playlist/pathway.py records, built from PATHWAYS), how each bucket's uploads fare
(bucket/: refused, waiting), the service's probe of each bucket's public URL, and what viewers' pages
report of their fetches (claims: a report may make the service probe at once, nothing more). Out: the
pathway priority (policy.py) rendered into the steering manifest players reload (playlist/steering.py),
the plan each pathway's playlists follow (policy.py's plan: a failing bucket lists what it lacks at the
URI of the pathway before it; the VM's lists only what the first bucket has while the VM redirects
there), the multivariant playlists that name every pathway (masters.py), and one log line, metric and /health
reason per switch.
Never: move players off a bucket the service sees serving, whatever any number of clients report; hold
players away once the evidence clears; or name a file from a URL.
"""
