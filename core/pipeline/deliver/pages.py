"""A page of a sink's backlog as the :class:`Delivery` objects the sink is handed.

One place for what the sink phase (``loop.deliver``) and the dry-run plan both
build: the operation (create or update, from the ledger), the external id the
sink reported before, and the author's profile as the store keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...contract.base import Delivery
from ...contract.schema import Identity
from ...store.identities import Identities
from ...store.ledger import PendingItem

#: author profiles kept between pages (authors recur); past this the cache starts over (~12 MB)
PROFILE_CACHE = 5_000


def page_deliveries(identities: Identities, page: Sequence[PendingItem], profiles: dict[str, Identity]) -> list[Delivery]:
    """Deliveries for ``page`` (pending items of the store's ledger); ``profiles`` is a cache
    the caller keeps across pages (filled here, bounded by :data:`PROFILE_CACHE`)."""
    wanted = {p.interaction.author.identity_id for p in page if p.interaction.author and p.interaction.author.identity_id}
    if len(profiles) > PROFILE_CACHE:
        profiles.clear()
    missing = [i for i in wanted if i not in profiles]
    if missing:
        profiles.update(identities.by_id(missing))
    return [
        Delivery(p.interaction, p.version, "create" if p.delivered_version is None else "update", p.external_id,
                 profiles.get(p.interaction.author.identity_id) if p.interaction.author and p.interaction.author.identity_id else None)
        for p in page
    ]


__all__ = ["PROFILE_CACHE", "page_deliveries"]
