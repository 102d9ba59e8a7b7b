"""Owncast's playlists into ours: the stage between the watcher and the server.

In: Owncast's parsed playlists and finished segments (source/), and the pathway plan (pathways.py:
the pathways, each failing bucket's fallbacks, whether the VM only redirects). Out: playlist versions
the server shows on each pathway (visible.py, one per pathway), each saved (state/) before it is
visible, then announced (the listing hook) and mirrored to the bucket (release.py, which the publisher
builds, starts and closes); segments that left every playlist, for the cleaner. What each pathway lists
of a variant's playlist is one rule (pathway_views.py: a bucket's pathway, once the upload to that
bucket landed; the VM's, at once). Segments are taken in (intake.py), lined up across variants (slots.py,
lanes.py), uploaded (uploads.py), listed only once uploaded (lister.py, verdict.py, listings.py; a copy Owncast has not finished holds only its own
variant: waiting.py, behind.py, writing.py, fates.py; given up there as a gap, it is uploaded late: late.py; a file
written again after its upload is uploaded again: rewrites.py) under the one target duration
(target.py), numbered so that no number is ever served twice (numbering.py, memory.py, recall.py,
playlist_memory.py, docs/hls-rules.md#numbers-across-restarts).

Each variant's playlist is held by variant_playlist.VariantPlaylist, which alone changes its
ManifestGenerator, through intents (open, list, gap, end, join; the three places a playlist restarts:
retarget, rejoin, continue_above; and keep_through, the hold of the pathway furthest behind).
pathway_views.PathwayViews says how far each pathway lists and returns that hold; it changes no
playlist. The uploads on their way are landings.Landings'; the playlist a new target left, which the
pathways behind still list, former.Former's; what the VM's pathway listed, and found's lookup,
listed_keys'. The target policy decides a new target and returns the decision; the lister applies it. Every playlist is made under one WindowOptions
(config.py), new or restored (variants.py). The other state has one owner each too, built by the
publisher (publisher.py; those the lister lists through come to it as one record, parts.Parts): what
was read of Owncast per variant (slots.Variant in variants.Variants,
written by the publisher only; a restore builds each whole, memory.decode), the numbering
(numbering.py), the slots (lanes.py), the uploads and their init sections' (uploads.py), the target
(target.py).
Never: serve HTTP, list a segment on a bucket's pathway before it is in that bucket, or show a
pathway a number another pathway gave another segment.
"""
