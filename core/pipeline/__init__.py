"""The data path, one module per stage, connected by ``run.Runner``:

    read  ->  resolve  ->  enrich  ->  commit  ->  deliver
    (read)    (resolve/)   (enrich)    (commit)    (deliver/)

Stages take and return plain data (batches of records, receipts) and never
reach back into the runner. ``workers`` (forked processes) and ``progress``
(bars) are used by stages; ``report`` holds what a run tells its caller.
docs/architecture.md draws it.
"""
