"""Everything that writes to or deletes from the bucket (R2 or any S3 server).

In: segment files to upload, playlist versions to mirror, keys no playlist may list any more. Out:
objects in the bucket, the URLs viewers fetch them at, and whether the bucket works (/health).
One aiobotocore client on a thread of its own (store_thread.py); every error is a StoreError there.
Never: decide what a playlist lists, or delete an object a playlist (or a kept recording) may still list.
"""
