"""CRM import-file profiles: which files, which columns, which limits.

A profile is a set of *file kinds*. Each kind has an object name (the CRM
object it imports into), the external-id column its rows upsert by, a list of
``(column, field)`` pairs and per-column length limits. ``field`` names a
value of the flat field set built by :func:`interaction_fields` or
:func:`identity_fields`, or ``literal:VALUE`` for a constant. Users override
or add columns per kind in config (``columns``), and drop one by mapping it to
an empty string.
"""

from __future__ import annotations

import html

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import crmsync


@dataclass(frozen=True)
class FileKind:
    """One file of a profile."""

    kind: str  # file name prefix: tasks, leads, notes, interactions, contacts
    object: str  # the CRM object: Task, Lead, Contact, Note
    key: str  # the external-id column rows upsert by
    source: str  # "interaction" rows (one per delivery) or "identity" rows (one per new author)
    columns: tuple[tuple[str, str], ...]
    limits: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    files: tuple[FileKind, ...]
    crm: str  # the key of Identity.crm_ids this CRM's record ids live under


GENERIC = Profile(
    name="generic",
    description="One interactions file and one contacts file with every schema field.",
    crm="generic",
    files=(
        FileKind(
            "interactions", "Interaction", "external_id", "interaction",
            tuple((c, c) for c in (
                "external_id", "version", "operation", "source", "channel", "kind", "native_id", "url", "title", "body_text",
                "published", "updated", "language", "author_identity_id", "author_name", "author_email", "author_handles",
                "author_profile_urls", "author_crm_id", "in_reply_to", "thread_id", "rating_value", "rating_best", "rating_worst",
                "rating_normalized", "item_reviewed", "tags", "mentions", "sentiment_label", "sentiment_score",
                "needs_response", "priority", "due_at", "content_hash",
            )),
        ),
        FileKind(
            "contacts", "Contact", "external_id", "identity",
            (("external_id", "identity_id"), ("name", "name"), ("email", "email"), ("emails", "emails"), ("handles", "handles"),
             ("profile_urls", "profile_urls"), ("company", "company"), ("influence", "influence"), ("flags", "flags")),
        ),
    ),
)

# Salesforce Data Loader / Bulk API: Task rows upsert by an external-id custom
# field; new authors become Leads (upsert by the same field) and the Task points
# at them through the polymorphic Who relationship (ObjectType:Relationship.Field).
SALESFORCE = Profile(
    name="salesforce",
    description="Salesforce Data Loader / Bulk API upsert: Task rows by Crmsync_Id__c, new authors as Leads by Crmsync_Id__c.",
    crm="salesforce",
    files=(
        FileKind(
            "tasks", "Task", "Crmsync_Id__c", "interaction",
            (
                ("Crmsync_Id__c", "external_id"),
                ("Subject", "subject"),
                ("Description", "description"),
                ("ActivityDate", "published_date"),
                ("Status", "literal:Completed"),
                ("Priority", "sf_priority"),
                ("TaskSubtype", "sf_subtype"),
                ("WhoId", "author_crm_id"),
                ("Lead:Who.Crmsync_Id__c", "author_new_lead_id"),
                ("Crmsync_Source__c", "source"),
                ("Crmsync_Channel__c", "channel"),
                ("Crmsync_Kind__c", "kind"),
                ("Crmsync_Url__c", "url"),
                ("Crmsync_Published__c", "published"),
                ("Crmsync_Thread_Id__c", "thread_id"),
                ("Crmsync_In_Reply_To__c", "in_reply_to"),
                ("Crmsync_Rating__c", "rating_normalized"),
                ("Crmsync_Sentiment__c", "sentiment_label"),
                ("Crmsync_Needs_Response__c", "needs_response"),
                ("Crmsync_Due__c", "due_at"),
            ),
            {"Subject": 255, "Description": 32000, "Crmsync_Url__c": 255, "Crmsync_Source__c": 255},
        ),
        FileKind(
            "leads", "Lead", "Crmsync_Id__c", "identity",
            (
                ("Crmsync_Id__c", "identity_id"),
                ("FirstName", "first_name"),
                ("LastName", "last_name"),
                ("Email", "email"),
                ("Company", "company_or_placeholder"),
                ("Website", "profile_url"),
                ("LeadSource", "literal:crmsync"),
                ("Description", "identity_summary"),
            ),
            {"FirstName": 40, "LastName": 80, "Email": 80, "Company": 255, "Website": 255, "Description": 32000},
        ),
    ),
)

# HubSpot imports two objects from one file when each row holds both: the
# contact (keyed by Email) and the note associated with it.
HUBSPOT = Profile(
    name="hubspot",
    description="HubSpot import: one file of notes with their contact in the same row (the matched CRM contact's Record ID and email; no contact for authors without either).",
    crm="hubspot",
    files=(
        FileKind(
            "notes", "Note", "crmsync ID", "interaction",
            (
                ("crmsync ID", "external_id"),
                ("Record ID", "contact_record_id"),
                ("Email", "contact_email"),
                ("First Name", "contact_first_name"),
                ("Last Name", "contact_last_name"),
                ("Company Name", "contact_company"),
                ("Note body", "note_body_html"),
                ("Activity date", "published"),
                ("crmsync source", "source"),
                ("crmsync URL", "url"),
                ("crmsync sentiment", "sentiment_label"),
                ("crmsync rating", "rating_normalized"),
                ("crmsync thread", "thread_id"),
                ("crmsync priority", "priority"),
                ("crmsync due", "due_at"),
            ),
            {"Note body": 65536, "crmsync URL": 65536},
        ),
    ),
)

PROFILES = {p.name: p for p in (GENERIC, SALESFORCE, HUBSPOT)}


def _z(dt: datetime | None) -> str | None:
    """Salesforce datetime format: ISO 8601 in UTC with ``Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def split_name(name: str | None, email: str | None) -> tuple[str | None, str | None]:
    """(first, last) from a display name, else from the email's local part."""
    if name and name.strip():
        parts = name.strip().split()
        if len(parts) == 1:
            return None, parts[0]
        return " ".join(parts[:-1]), parts[-1]
    if email:
        return None, email.split("@", 1)[0]
    return None, None


def interaction_fields(d: crmsync.Delivery, crm: str, *, html_note: bool = True) -> dict[str, Any]:
    """Every value a column can name, for one delivery (``html_note=False``: without
    ``note_body_html``, for file kinds that do not use it)."""
    i = d.interaction
    a = i.author
    first, last = split_name(a.name if a else None, a.emails[0] if a and a.emails else None)
    crm_id = a.crm_ids.get(crm) if a else None
    # the contact a note belongs to: the CRM's own record when identity matched one (its
    # record id and the email the CRM holds, from the stored profile), else the author's
    # address; none for a business's reply or an author with neither (no empty contacts)
    profile = d.author_profile if d.author_profile is not None and crm_id and d.author_profile.crm_ids.get(crm) == crm_id else None
    business = bool(i.extra.get("business_reply"))
    contact = None if business else (profile or a)
    contact_email = contact.emails[0] if contact is not None and contact.emails else None
    has_contact = contact is not None and bool(contact_email or crm_id)
    c_first, c_last = split_name(contact.name, contact_email) if has_contact else (None, None)
    text = i.body_text or i.summary or ""
    footer = [f"Link: {i.url}"] if i.url else []
    if i.rating:
        footer.append(f"Rating: {i.rating.value:g}/{i.rating.best:g}")
    if i.sentiment:
        footer.append(f"Sentiment: {i.sentiment.label}")
    description = text + ("\n\n" + "\n".join(footer) if footer else "")
    subject = i.title or f"{i.kind.capitalize()} via {i.source}"
    return {
        "external_id": i.interaction_id,
        "version": d.version,
        "operation": d.operation,
        "source": i.source,
        "channel": i.channel,
        "kind": i.kind,
        "native_id": i.native_id,
        "url": i.url,
        "title": i.title,
        "subject": subject,
        "body_text": i.body_text,
        "description": description,
        "note_body": f"{subject}\n\n{description}",
        # HubSpot renders a note's body as HTML: the text goes in escaped, its lines as <br>
        "note_body_html": "<br>".join(html.escape(line) for line in f"{subject}\n\n{description}".split("\n")) if html_note else None,
        "published": _z(i.published),
        "published_date": i.published.astimezone(UTC).date().isoformat() if i.published else None,
        "updated": _z(i.updated),
        "language": i.language,
        "author_identity_id": a.identity_id if a else None,
        "author_name": a.name if a else None,
        "author_first_name": first,
        "author_last_name": last,
        "author_email": a.emails[0] if a and a.emails else None,
        "author_handles": ";".join(a.handles) if a else None,
        "author_profile_urls": ";".join(a.profile_urls) if a else None,
        "author_company": a.company if a else None,
        "author_crm_id": crm_id,
        "contact_record_id": crm_id if has_contact else None,
        "contact_email": contact_email if has_contact else None,
        "contact_first_name": c_first,
        "contact_last_name": c_last,
        "contact_company": contact.company if has_contact else None,
        "author_new_lead_id": a.identity_id if a and not crm_id and a.identity_id else None,
        "in_reply_to": i.in_reply_to,
        "thread_id": i.thread_id,
        "rating_value": i.rating.value if i.rating else None,
        "rating_best": i.rating.best if i.rating else None,
        "rating_worst": i.rating.worst if i.rating else None,
        "rating_normalized": i.rating.normalized if i.rating else None,
        "item_reviewed": (i.item_reviewed.name or i.item_reviewed.id) if i.item_reviewed else None,
        "tags": ";".join(i.tags),
        "mentions": ";".join(i.mentions),
        "sentiment_label": i.sentiment.label if i.sentiment else None,
        "sentiment_score": i.sentiment.score if i.sentiment else None,
        "needs_response": i.needs_response,
        "priority": i.priority,
        "due_at": _z(i.due_at),
        "sf_priority": "High" if i.priority in ("high", "urgent") else "Normal",
        "sf_subtype": "Email" if i.channel == "email" else "Task",
        "content_hash": i.content_hash,
    }


def identity_fields(a: crmsync.Identity) -> dict[str, Any]:
    """Every value a column can name, for one author."""
    email = a.emails[0] if a.emails else None
    first, last = split_name(a.name, email)
    summary = "; ".join(x for x in (", ".join(a.handles), ", ".join(a.profile_urls)) if x)
    return {
        "identity_id": a.identity_id,
        "external_id": a.identity_id,
        "name": a.name,
        "first_name": first,
        "last_name": last or "[unknown]",
        "email": email,
        "emails": ";".join(a.emails),
        "handles": ";".join(a.handles),
        "profile_urls": ";".join(a.profile_urls),
        "profile_url": a.profile_urls[0] if a.profile_urls else None,
        "company": a.company,
        "company_or_placeholder": a.company or "[not provided]",
        "identity_summary": f"Seen by crmsync: {summary}" if summary else "Seen by crmsync",
        "influence": a.influence,
        "flags": ";".join(a.flags),
    }


def field_names(source: str) -> list[str]:
    """The field names columns may use for a file kind's source."""
    if source == "interaction":
        return sorted(INTERACTION_FIELD_NAMES)
    return sorted(IDENTITY_FIELD_NAMES)


INTERACTION_FIELD_NAMES = frozenset(
    interaction_fields(crmsync.Delivery(crmsync.Interaction.create(source="x", channel="feed", native_id="https://x/1", kind="post"), 1, "create"), "x")
)
IDENTITY_FIELD_NAMES = frozenset(identity_fields(crmsync.Identity(name="x")))
