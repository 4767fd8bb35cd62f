"""Deliver: each sink gets what its ledger says it lacks, exactly once.

* ``loop``: the delivery loop, i.e. when a sink's ``open``, ``write``,
  ``flush``, ``abort`` and ``close`` are called and what happens to their
  receipts and rejections. Start here when writing a sink.
* ``sink``: one sink instance in a run: its lock, in this process or split
  over worker processes.
* ``receipts``: receipts checked against what the sink was handed; partial writes.
* ``rejections``: records a sink rejected, kept in the quarantine until delivered.
* ``pages``: a page of the backlog as the ``Delivery`` objects a sink is handed.
* ``plan``: ``--dry-run``: counts, and what a sink would write.
"""

from .loop import SinkSetup, deliver
from .plan import dry_run
from .sink import deliver_sink

__all__ = ["SinkSetup", "deliver", "deliver_sink", "dry_run"]
