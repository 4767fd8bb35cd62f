"""The sink kit's input: a fixed set of interactions, hostile content included."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any


from ..contract.base import Checkpoint, Source
from ..contract.schema import Identity, Interaction, ItemReviewed, Rating


def sample_interactions(variant: int = 0) -> list[Interaction]:
    """A fixed set of interactions covering the schema, hostile content included.

    ``variant=1`` edits one of them (new title and body), as a re-read would.
    """
    base = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    people = [
        Identity(name="Ann Example", emails=["ann@example.org"]),
        Identity(name="=cmd|' /C calc'!A0", emails=["attacker@example.net"]),
        Identity(name="Zoë Ångström", handles=["twitter:zoe"], profile_urls=["https://x.com/zoe"]),
    ]
    titles = [
        "Plain title",
        "=HYPERLINK(\"http://evil.example\",\"click\")",
        "+SUM(1+1)*cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)",
        "\tTabbed",
        "\rReturn",
        "Comma, \"quotes\" and\nnewline",
        "Ünïcödé ✓ 漢字",
        "<script>alert(1)</script>",
    ]
    out = []
    for n in range(12):
        title = titles[n % len(titles)]
        body = f"Body {n}: line one\nline two, with \"quotes\""
        if variant == 1 and n == 3:
            title, body = "Edited title", "Edited body"
        kwargs: dict[str, Any] = {}
        if n % 4 == 0:
            kwargs["rating"] = Rating(value=(n % 5) + 1)
            kwargs["item_reviewed"] = ItemReviewed(name="Acme Rocket", id="ACME-1")
        native = f"kit-{n:03d}" if n % 2 else f"https://kit.example/items/{n}"
        out.append(
            Interaction.create(
                source="kit_source",
                channel="review" if "rating" in kwargs else "feed",
                native_id=native,
                scope="kit.example",
                kind="review" if "rating" in kwargs else "post",
                url=f"https://kit.example/items/{n}",
                title=title,
                body_text=body,
                body_html=f"<p onclick='x()'>{body}</p><script>steal()</script>",
                published=base + timedelta(hours=n),
                author=people[n % len(people)],
                tags=["kit", f"n{n}"],
                **kwargs,
            )
        )
    return out


class SampleSource(Source):
    """Emits :func:`sample_interactions` (the sink kit's input)."""

    name = "crmsync_kit_samples"
    channel = "feed"
    config_schema = {"type": "object", "properties": {"variant": {"type": "integer", "default": 0}}}

    def read(self, state: dict[str, Any] | None) -> Iterator[Any]:
        for rec in sample_interactions(self.config["variant"]):
            yield rec.model_copy(update={"source": self.instance})
        yield Checkpoint({"variant": self.config["variant"]})


