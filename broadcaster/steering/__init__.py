"""Content steering: which delivery pathway players use, decided on the service's own evidence.

In: the pathways, how each bucket's uploads fare, the service's probe of each bucket's public URL, and
viewers' reports of their fetches (claims). Out: the pathway priority in the steering manifest, the plan
each pathway's playlists follow, and one log line, metric and /health reason per switch.
Never: move players off a bucket the service sees serving, whatever any number of clients report; hold
players away once the evidence clears; or name a file from a URL.
"""
