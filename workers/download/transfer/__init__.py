"""The transfer engine: each planned file's bytes from the first request to the published blob.

A file's life (see docs/architecture.md, "A file's life")::

    metadata (HEAD) -> claim the partial (Redis + file lock) -> Range GET into blobs/<etag>.incomplete,
    hashing as bytes land -> retry transient failures, resuming from the bytes on disk ->
    fsync, compare the hash, os.replace to blobs/<etag> -> snapshot link (and refs/ once all landed)

- :mod:`workers.download.transfer.engine`: one download's files, a few at a time, and its progress.
- :mod:`workers.download.transfer.partial`: a partial file that hashes what is written and publishes itself.
- :mod:`workers.download.transfer.retry`: which failures are transient, and the backoff between tries.
- :mod:`workers.download.transfer.bandwidth`: the per-worker rate cap.
- :mod:`workers.download.transfer.claims`: one writer per partial file across hosts.

HTTP goes only through huggingface_hub (``get_hf_file_metadata``, ``hf_hub_url``, ``http_get``, ``xet_get``).
"""
