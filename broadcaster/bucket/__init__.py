"""Everything that writes to or deletes from a bucket (R2 or any S3 server), and what the VM holds.

In: segment files to upload, playlist versions to mirror, keys no playlist may list any more; the
bucket settings, one record per configured bucket (pathway_settings.BucketSettings). Out: objects in
each bucket, the URLs viewers fetch them at, and whether each bucket works (/health, metrics labelled
with its pathway). bucket.py is one bucket: its store, uploader, checks, probe and cleaner, instantiated
per bucket in PATHWAYS; held.py is what the VM holds of a segment (Owncast's file while it is the
version held, and a copy only after a failed upload, until every bucket has it): nothing while every
upload lands at once and the VM only redirects.
One aiobotocore client per bucket on a thread of its own (store_thread.py); every error is a StoreError
there.
Never: decide what a playlist lists, delete an object a playlist (or a kept recording) may still list,
or write a copy of a segment every bucket took at once.
"""
