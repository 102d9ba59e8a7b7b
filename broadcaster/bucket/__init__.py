"""Everything that writes to or deletes from a bucket (R2 or any S3 server).

In: segment files to upload, playlist versions to mirror, keys no playlist may list any more; the
bucket settings, one record per configured bucket (settings.BucketSettings). Out: objects in
each bucket, the URLs viewers fetch them at, and whether each bucket works (/health, metrics labelled
with its pathway). One aiobotocore client per bucket on a thread of its own (store_thread.py); every
error is a StoreError there. What the VM holds of a segment is the vm stage's, told through the Holder
protocol (segment_reads.py).
Never: decide what a playlist lists, delete an object a playlist (or a kept recording) may still list,
or write a copy of a segment every bucket took at once.
"""
