"""Everything that writes to or deletes from a bucket (R2 or any S3 server).

In: segment files to upload, playlist versions to mirror, keys no playlist may list any more. Out: objects
in each bucket, the URLs viewers fetch them at, and whether each bucket works (every error a StoreError).
Never: decide what a playlist lists, delete an object a playlist (or a kept recording) may still list,
or write a copy of a segment every bucket took at once.
"""
