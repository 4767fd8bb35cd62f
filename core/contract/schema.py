"""The shared interaction schema: the records every source emits and every sink receives.

An :class:`Interaction` is one thing a person said in public or to the company
(a post, comment, review, email or reply); an :class:`Identity` is its author.
The schema is versioned by :data:`SCHEMA_VERSION` and exported as JSON Schema
by ``crmsync schema``. It covers:

* Activity Streams 2.0: ``author`` (actor/attributedTo), ``in_reply_to``
  (inReplyTo), ``thread_id`` (context), ``mentions``/``tags`` (tag, Mention);
* schema.org Review/Rating: ``rating`` (ratingValue, bestRating, worstRating),
  ``item_reviewed``;
* RSS, Atom and JSON Feed items (guid/id, link, title, content, summary,
  author, categories, enclosures as ``attachments``);
* RFC 5322 mail (Message-ID, In-Reply-To/References, From/Reply-To, To/Cc).

Ids are deterministic: see :func:`make_interaction_id`.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .text import html_to_text, safe_url, sanitize_html, truncate

#: Version of the record layout. Minor bumps add optional fields only.
SCHEMA_VERSION = "1.0"

#: UUIDv5 namespace of interaction ids. Never change it: ids would change.
INTERACTION_NAMESPACE = uuid.UUID("3b1f6d2e-8c4a-5e7b-9f10-2a6c4d8e0b57")
#: UUIDv5 namespace of identity ids.
IDENTITY_NAMESPACE = uuid.UUID("9d4e2a71-5b3c-5f8e-a1c6-7e0b3f9d2c48")

#: Channel families. Ids are unique within a family, so a post seen in an RSS
#: and an Atom feed (both ``feed``) gets one id. A plugin with a family of its own names
#: it ``x-<name>`` (``x-forum``); anything else is refused, so a typo is not a new family.
CHANNELS = ("feed", "email", "review", "social", "chat", "other")
_CUSTOM_CHANNEL = re.compile(r"^x-[a-z0-9][a-z0-9_-]{0,40}$")
_UUID_SHAPE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: Kinds of interaction.
KINDS = ("post", "comment", "review", "email", "reply", "note", "message")

#: Size caps applied to untrusted text fields (characters).
MAX_BODY_CHARS = 1_000_000
MAX_TITLE_CHARS = 2_000
MAX_URL_CHARS = 4_096

_URI = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*://\S+|urn:\S+|tag:\S+)$", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"^<[^<>\s@]+@[^<>\s]+>$")


def is_globally_unique(native_id: str) -> bool:
    """Whether ``native_id`` is globally unique by construction.

    True for URI-shaped ids (``https://…``, ``urn:…``, ``tag:…``: RSS
    permalink guids, Atom ids, JSON-LD ``@id``) and RFC 5322 Message-IDs
    (``<local@domain>``). Such ids are not scoped by feed or platform.
    """
    return bool(_URI.match(native_id) or _MESSAGE_ID.match(native_id))


def make_interaction_id(channel: str, native_id: str, scope: str | None = None) -> str:
    """The deterministic id of an interaction: a UUIDv5 string.

    ``channel`` is the family (``feed``, ``email``, ``review``); ``native_id``
    the source's own id (RSS guid, Atom id, Message-ID, review id), used as is,
    never case-folded; ``scope`` makes a locally unique id unique (the feed URL,
    or ``platform/product`` for reviews). The scope is ignored when the native
    id is globally unique (:func:`is_globally_unique`), so the same item
    fetched from two feeds or two mail stores gets one id.
    """
    if not native_id:
        msg = "an interaction needs a native id (guid, Message-ID, review id) to get a stable id"
        raise ValueError(msg)
    effective = "" if is_globally_unique(native_id) else (scope or "")
    return uuid5_str(INTERACTION_NAMESPACE, f"{channel}\n{effective}\n{native_id}")


def make_identity_id(kind: str, key: str) -> str:
    """The deterministic id of an identity known by ``kind`` (email, url, handle, crm) and ``key``."""
    return uuid5_str(IDENTITY_NAMESPACE, f"{kind}\n{key}")


def uuid5_str(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))`` without building a ``UUID`` (a third of the
    time: every record and author gets one or more): SHA-1 of the namespace and the name,
    with the version and variant bits set as RFC 9562 says."""
    digest = bytearray(hashlib.sha1(namespace.bytes + name.encode("utf-8")).digest()[:16])  # noqa: S324 - UUIDv5 is SHA-1 by definition
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def content_hash(payload: Any) -> str:
    """SHA-256 of a JSON-able payload in canonical form (sorted keys, no spaces)."""
    data = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


#: Validation context for records read back from crmsync's own store: they were
#: sanitized, truncated and hashed when made, so that work is not done again.
STORED: dict[str, bool] = {"stored": True}


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False, populate_by_name=True)


def _nul_free(text: str) -> str:
    return text.replace("\x00", "")


#: Interaction text fields NUL characters are removed from.
_NUL_CHECKED = ("native_id", "scope", "url", "title", "body_text", "body_html", "summary", "language")


class Identity(_Model):
    """A person or organisation: the author of an interaction or a CRM contact.

    ``handles`` are ``platform:handle`` strings (``twitter:acme``);
    ``crm_ids`` maps a CRM (``salesforce``) to its record id.
    """

    identity_id: str | None = Field(default=None, description="Stable id; derived from the strongest key when not given.")
    name: str | None = None
    emails: list[str] = Field(default_factory=list)
    verified_emails: list[str] = Field(default_factory=list, description="Emails proven by the source (e.g. DMARC pass).")
    handles: list[str] = Field(default_factory=list, description="platform:handle, e.g. twitter:acme")
    profile_urls: list[str] = Field(default_factory=list)
    company: str | None = None
    crm_ids: dict[str, str] = Field(default_factory=dict, description="CRM name -> record id")
    kind: Literal["person", "organization", "unknown"] = "person"
    removed: bool = Field(default=False, description="The CRM's latest export no longer lists this record (marked, never deleted).")
    influence: float | None = Field(default=None, description="Influence score (see [identity.influence] in the config).")
    flags: list[str] = Field(default_factory=list, description="influencer, ambassador, detractor")

    @model_validator(mode="after")
    def _derive_id(self) -> Identity:
        # NUL has no place in a name or an address (PostgreSQL refuses it in text; a CSV cell must not carry it)
        if self.name and "\x00" in self.name:
            self.name = _nul_free(self.name)
        for key in ("emails", "handles", "profile_urls"):
            values = getattr(self, key)
            if any("\x00" in v for v in values):
                setattr(self, key, [_nul_free(v) for v in values])
        if self.profile_urls:
            self.profile_urls = [u for u in self.profile_urls if safe_url(u)]
        if self.identity_id is None:
            if self.crm_ids:
                crm, rid = sorted(self.crm_ids.items())[0]
                self.identity_id = make_identity_id("crm", f"{crm}:{rid}")
            elif self.emails:
                self.identity_id = make_identity_id("email", self.emails[0].strip().lower())
            elif self.profile_urls:
                self.identity_id = make_identity_id("url", self.profile_urls[0].strip())
            elif self.handles:
                self.identity_id = make_identity_id("handle", self.handles[0].strip())
        return self


class Rating(_Model):
    """A rating on its own scale, plus the value normalized to 0..1.

    Defaults follow schema.org: ``best`` 5, ``worst`` 1.
    """

    value: float
    best: float = 5.0
    worst: float = 1.0
    normalized: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _normalize(self) -> Rating:
        if self.best == self.worst:
            msg = f"rating scale is empty: best ({self.best}) equals worst ({self.worst})"
            raise ValueError(msg)
        if self.normalized is None:
            n = (self.value - self.worst) / (self.best - self.worst)
            self.normalized = round(min(1.0, max(0.0, n)), 6)
        return self


class ItemReviewed(_Model):
    """What a review is about (schema.org ``itemReviewed``)."""

    name: str | None = None
    id: str | None = None
    sku: str | None = None
    url: str | None = None

    _safe = field_validator("url")(classmethod(lambda cls, v: safe_url(v)))


class Attachment(_Model):
    """Metadata of an attachment or enclosure; the content is never stored."""

    filename: str | None = None
    url: str | None = None
    media_type: str | None = None
    size: int | None = None
    sha256: str | None = None

    _safe = field_validator("url")(classmethod(lambda cls, v: safe_url(v)))


class Sentiment(_Model):
    """How the author felt: ``score`` in -1..1 and a label."""

    score: float = Field(ge=-1.0, le=1.0)
    label: Literal["positive", "negative", "neutral", "mixed"]
    method: str | None = None


class Provenance(_Model):
    """Where a record came from and how it was parsed."""

    source_url: str | None = Field(default=None, description="Feed URL, file path, mailbox folder.")
    record_ref: str | None = Field(default=None, description="Locator within the source: row, UID, file offset.")
    raw_hash: str | None = Field(default=None, description="SHA-256 of the raw payload.")
    parser: str | None = None
    parser_version: str | None = None


#: Fields that make up an interaction's content. A change in any of them is an
#: edit (new version); enrichment and provenance are not content.
CONTENT_FIELDS = (
    "kind", "url", "title", "summary", "body_text", "body_html", "language", "published",
    "updated", "author", "recipients", "in_reply_to", "thread_id", "rating", "item_reviewed",
    "mentions", "tags", "attachments", "engagement",
)


_CONTENT_SET = frozenset(CONTENT_FIELDS)
_CONTENT_INCLUDE: set[str] = set(CONTENT_FIELDS)


class Interaction(_Model):
    """One post, comment, review, email or reply, normalized.

    Build one with :meth:`Interaction.create`, which derives the id. HTML in
    ``body_html`` is always sanitized, ``body_text`` derived from it when not
    given, text fields capped, and times converted to UTC.
    """

    schema_version: str = SCHEMA_VERSION
    interaction_id: str = Field(description="UUIDv5 over channel family, scope and native id.")
    source: str = Field(description="Name of the configured source instance.")
    channel: str = Field(description="Channel family: feed, email, review, ...")
    kind: str = Field(description="post, comment, review, email, reply, ...")
    native_id: str = Field(description="The source's own id: guid, Atom id, Message-ID, review id.")
    scope: str | None = Field(default=None, description="What makes native_id unique, unless it is globally unique.")
    url: str | None = None
    title: str | None = None
    summary: str | None = Field(default=None, description="Plain-text summary, when the source has one apart from the body.")
    body_text: str | None = None
    body_html: str | None = None
    language: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    fetched: datetime | None = None
    author: Identity | None = None
    recipients: list[str] = Field(default_factory=list, description="To/Cc addresses or audience.")
    in_reply_to: str | None = Field(default=None, description="interaction_id of the parent (never its native id).")
    thread_id: str | None = Field(default=None, description="interaction_id of the conversation's first interaction (the post, the first mail): the same for every interaction of the thread.")
    rating: Rating | None = None
    item_reviewed: ItemReviewed | None = None
    mentions: list[str] = Field(default_factory=list, description="Brands, products or people mentioned.")
    tags: list[str] = Field(default_factory=list, description="Categories and tags.")
    engagement: dict[str, int] = Field(default_factory=dict, description="Reach signals: helpful_votes, comments, followers.")
    attachments: list[Attachment] = Field(default_factory=list)
    sentiment: Sentiment | None = None
    needs_response: bool | None = None
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    due_at: datetime | None = Field(default=None, description="When a response is due (triage), UTC.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Plugin-specific fields (enrichers write here too).")
    provenance: Provenance = Field(default_factory=lambda: Provenance())
    deleted: bool = Field(default=False, description="Taken down upstream (its source said it is gone): sinks delete it.")
    content_hash: str | None = Field(default=None, description="SHA-256 over the content fields; a change is an edit.")

    @field_validator("published", "updated", "fetched", "due_at")
    @classmethod
    def _to_utc(cls, v: datetime | None) -> datetime | None:
        return _utc(v)

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, v: str) -> str:
        if v not in CHANNELS and not _CUSTOM_CHANNEL.match(v):
            msg = f"channel {v!r} is not one of {', '.join(CHANNELS)}; a family of the plugin's own is named x-<name> (x-forum)"
            raise ValueError(msg)
        return v

    @field_validator("in_reply_to", "thread_id")
    @classmethod
    def _an_interaction_id(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and not _UUID_SHAPE.match(v):
            msg = (
                f"{info.field_name} must be an interaction_id (crmsync.make_interaction_id(channel, native_id, scope)), "
                f"not a native id such as {v[:60]!r}"
            )
            raise ValueError(msg)
        return v

    @field_validator("url")
    @classmethod
    def _cap_url(cls, v: str | None) -> str | None:
        if v is not None and len(v) > MAX_URL_CHARS:
            msg = f"url longer than {MAX_URL_CHARS} characters"
            raise ValueError(msg)
        return safe_url(v)  # a javascript:/data: link never reaches a CRM

    @model_validator(mode="after")
    def _clean(self, info: ValidationInfo) -> Interaction:
        if info.context is STORED and self.content_hash is not None:
            return self  # read back from the store: cleaned when it was made
        for key in _NUL_CHECKED:
            value = getattr(self, key)
            if value and "\x00" in value:
                setattr(self, key, _nul_free(value))
        if self.body_html:
            self.body_html = truncate(sanitize_html(self.body_html), MAX_BODY_CHARS)[0]
            if not self.body_text and self.body_html:
                self.body_text = html_to_text(self.body_html)
        self.body_text = truncate(self.body_text, MAX_BODY_CHARS)[0]
        self.summary = truncate(self.summary, MAX_BODY_CHARS)[0]
        self.title = truncate(self.title, MAX_TITLE_CHARS)[0]
        if self.content_hash is None:
            self.content_hash = self.compute_content_hash()
        return self

    @classmethod
    def create(cls, *, source: str, channel: str, native_id: str, scope: str | None = None, **fields: Any) -> Interaction:
        """Build an interaction, deriving ``interaction_id`` from channel, scope and native id
        (NUL characters removed from both first)."""
        if "\x00" in native_id or (scope and "\x00" in scope):
            native_id, scope = _nul_free(native_id), _nul_free(scope) if scope else scope
        return cls(
            interaction_id=make_interaction_id(channel, native_id, scope),
            source=source,
            channel=channel,
            native_id=native_id,
            scope=None if is_globally_unique(native_id) else scope,
            **fields,
        )

    def compute_content_hash(self) -> str:
        """SHA-256 over :data:`CONTENT_FIELDS`, serialized as JSON in schema field order."""
        digest = hashlib.sha256(self.__pydantic_serializer__.to_json(self, include=_CONTENT_INCLUDE))
        if self.deleted:  # a takedown is a new version; the hashes of everything else stay as they were
            digest.update(b"\x00deleted")
        return digest.hexdigest()

    def to_json_dict(self) -> dict[str, Any]:
        """The record as JSON-compatible data (times as ISO 8601 UTC)."""
        return self.model_dump(mode="json")


def flat_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with ``$ref``s inlined, as Singer targets expect."""
    import copy

    schema = model.model_json_schema()
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = defs[node["$ref"].rsplit("/", 1)[-1]]
                return {**walk(copy.deepcopy(target)), **{k: walk(v) for k, v in node.items() if k != "$ref"}}
            return {k: walk(v) for k, v in node.items() if k != "$defs" and not (k == "title" and isinstance(v, str))}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    flat: dict[str, Any] = walk(schema)
    return flat


def schema_document(record: str = "interaction") -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) printed by ``crmsync schema``: its root validates
    one line of ``crmsync export`` (an interaction and its ``version`` in the store), and
    the other record types (``Identity``, ``Rating``...) are under ``$defs``. With
    ``record="identity"``, the root is an identity (``crmsync schema identity``)."""
    if record == "identity":
        body = Identity.model_json_schema()
        title = "crmsync identity"
    elif record == "interaction":
        body = Interaction.model_json_schema()
        body["properties"]["version"] = {
            "type": "integer",
            "minimum": 1,
            "title": "Version",
            "description": "The store's version of this interaction: 1, then one more per edit. On `crmsync export` lines.",
        }
        title = "crmsync interaction (one line of crmsync export)"
    else:
        msg = f"no schema for {record!r}: use 'interaction' or 'identity'"
        raise ValueError(msg)
    body.pop("title", None)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, "schema_version": SCHEMA_VERSION, **body}


__all__ = [
    "CHANNELS",
    "CONTENT_FIELDS",
    "KINDS",
    "SCHEMA_VERSION",
    "Attachment",
    "Identity",
    "Interaction",
    "ItemReviewed",
    "Provenance",
    "Rating",
    "Sentiment",
    "content_hash",
    "flat_json_schema",
    "is_globally_unique",
    "make_identity_id",
    "make_interaction_id",
    "schema_document",
]
