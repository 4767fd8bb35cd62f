"""The shared schema: deterministic ids, sanitizing, ratings, content hashes, JSON Schema."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from click.testing import CliRunner

from crmsync import Identity, Interaction, Rating, is_globally_unique, make_interaction_id
from crmsync.cli import create_cli
from crmsync.contract.schema import SCHEMA_VERSION, schema_document


def test_interaction_id_is_uuid5_and_stable():
    a = make_interaction_id("feed", "guid-1", "https://blog.example/feed")
    assert uuid.UUID(a).version == 5
    assert a == make_interaction_id("feed", "guid-1", "https://blog.example/feed")
    # locally unique ids are scoped
    assert a != make_interaction_id("feed", "guid-1", "https://other.example/feed")
    # never case-folded
    assert make_interaction_id("feed", "Guid-1", "s") != make_interaction_id("feed", "guid-1", "s")
    # channel families are separate namespaces
    assert make_interaction_id("review", "guid-1", "s") != make_interaction_id("feed", "guid-1", "s")


@settings(max_examples=2000, deadline=None)
@given(st.text())
def test_ids_are_the_standard_librarys_uuid5(name):
    """The ids of 0.1 and 0.2 were str(uuid.uuid5(...)); the faster form must keep every one."""
    from crmsync.contract.schema import IDENTITY_NAMESPACE, INTERACTION_NAMESPACE, uuid5_str

    try:
        expected = [str(uuid.uuid5(ns, name)) for ns in (INTERACTION_NAMESPACE, IDENTITY_NAMESPACE)]
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            uuid5_str(INTERACTION_NAMESPACE, name)
        return
    assert [uuid5_str(ns, name) for ns in (INTERACTION_NAMESPACE, IDENTITY_NAMESPACE)] == expected


@pytest.mark.parametrize(
    "native",
    ["https://blog.example/p/1", "tag:blog.example,2026:1", "urn:uuid:0b2e5ad6-8d4f-4b4b-9d2f-5d4d4b4e0f11", "<abc.123@mail.example.org>"],
)
def test_globally_unique_ids_ignore_scope(native):
    assert is_globally_unique(native)
    # cross-posted to two feeds, or in both an mbox and a Maildir: one id
    assert make_interaction_id("feed", native, "https://a.example/rss") == make_interaction_id("feed", native, "https://b.example/atom")


@pytest.mark.parametrize("native", ["1234", "gp:AOqpTOF", "post-17", "abc@def", "<no-at-sign>", "12:30"])
def test_local_ids_are_scoped(native):
    assert not is_globally_unique(native)


def test_missing_native_id_is_an_error():
    with pytest.raises(ValueError, match="native id"):
        make_interaction_id("feed", "", "scope")


def _post(**kw):
    base = {"source": "s", "channel": "feed", "native_id": "https://b.example/1", "kind": "post"}
    return Interaction.create(**{**base, **kw})


def test_html_is_sanitized_and_text_derived():
    rec = _post(body_html='<p onclick="x()">Hi <b>there</b></p><script>alert(1)</script><a href="javascript:alert(1)">l</a><img src=x onerror=steal()>')
    assert "script" not in rec.body_html and "onclick" not in rec.body_html and "javascript" not in rec.body_html and "onerror" not in rec.body_html
    assert "<b>there</b>" in rec.body_html
    assert rec.body_text == "Hi there\nl"


def test_sanitizing_cannot_be_bypassed_by_construction():
    rec = Interaction(interaction_id="x", source="s", channel="feed", kind="post", native_id="n", body_html="<script>bad()</script>ok")
    assert rec.body_html == "ok"
    again = Interaction.model_validate_json(rec.model_dump_json().replace("ok", "<script>x()</script>ok"))
    assert "<script>" not in again.body_html


def test_times_are_utc():
    rec = _post(published=datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=5))), updated=datetime(2026, 1, 1, 12, 0))
    assert rec.published.isoformat() == "2026-01-01T07:00:00+00:00"
    assert rec.updated.tzinfo is not None and rec.updated.utcoffset() == timedelta(0)


def test_rating_normalization():
    assert Rating(value=1, best=5, worst=1).normalized == 0.0
    assert Rating(value=5).normalized == 1.0
    assert Rating(value=2, best=10, worst=0).normalized == 0.2
    assert Rating(value=4, best=5, worst=1).normalized == 0.75
    with pytest.raises(ValueError, match="empty"):
        Rating(value=1, best=1, worst=1)


def test_content_hash_changes_only_with_content():
    a = _post(title="t", body_text="b")
    assert a.content_hash == _post(title="t", body_text="b", fetched=datetime(2030, 1, 1)).content_hash
    assert a.content_hash != _post(title="t", body_text="b2").content_hash
    enriched = a.model_copy(update={"needs_response": True})
    assert enriched.compute_content_hash() == a.content_hash


def test_caps_apply():
    rec = _post(title="x" * 5000, body_text="y" * 1_100_000)
    assert len(rec.title) == 2000 and rec.title.endswith("[truncated]")
    assert len(rec.body_text) == 1_000_000
    with pytest.raises(ValueError, match="url longer"):
        _post(url="https://e.example/" + "a" * 5000)


def test_identity_id_from_strongest_key():
    assert Identity(emails=["A@Example.org"]).identity_id == Identity(emails=["a@example.org"]).identity_id
    assert Identity(crm_ids={"sf": "003"}, emails=["a@example.org"]).identity_id != Identity(emails=["a@example.org"]).identity_id
    assert Identity(name="Only A Name").identity_id is None


def test_json_schema_export_covers_the_required_fields():
    doc = schema_document()
    props = doc["properties"]
    for f in [
        "interaction_id", "source", "channel", "kind", "native_id", "url", "title", "body_text", "body_html", "language",
        "published", "updated", "fetched", "author", "in_reply_to", "thread_id", "rating", "item_reviewed", "mentions",
        "tags", "sentiment", "needs_response", "priority", "provenance", "content_hash", "schema_version",
    ]:
        assert f in props, f
    jsonschema.Draft202012Validator.check_schema(doc)
    rec = _post(title="t", rating=Rating(value=3))
    jsonschema.validate(rec.to_json_dict(), doc)
    result = CliRunner().invoke(create_cli(), ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["schema_version"] == SCHEMA_VERSION


def test_every_line_crmsync_export_prints_for_the_demo_validates_against_crmsync_schema(demo_dir):
    cfg = str(demo_dir / "crmsync.toml")
    assert CliRunner().invoke(create_cli(), ["-c", cfg, "run", "--no-progress"]).exit_code == 0
    schema = json.loads(CliRunner().invoke(create_cli(), ["schema"]).output)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    lines = CliRunner().invoke(create_cli(), ["-c", cfg, "export"]).output.splitlines()
    assert len(lines) == 12
    for line in lines:
        errors = [e.message for e in validator.iter_errors(json.loads(line))]
        assert not errors, errors
    # the root is a schema of one line, not a bundle that accepts anything
    assert list(validator.iter_errors({})) and list(validator.iter_errors({**json.loads(lines[0]), "unexpected": 1}))
    identity = json.loads(CliRunner().invoke(create_cli(), ["schema", "identity"]).output)
    author = json.loads(lines[0])["author"]
    jsonschema.validate(author, identity)
    assert not jsonschema.Draft202012Validator(identity).is_valid({"emails": "not-a-list"})


# the contract's boundary: what a plugin gets wrong is refused with what to do instead
def test_a_channel_outside_the_vocabulary_is_refused_with_the_vocabulary():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="is not one of feed, email, review, social, chat, other; a family of the plugin's own is named x-<name>"):
        Interaction.create(source="s", channel="blog", native_id="n", kind="post")
    assert Interaction.create(source="s", channel="x-forum", native_id="n", kind="post").channel == "x-forum"


def test_in_reply_to_holding_a_native_id_is_refused():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="in_reply_to must be an interaction_id"):
        Interaction.create(source="s", channel="feed", native_id="https://b.example/2", kind="comment", in_reply_to="https://b.example/1")
    parent = make_interaction_id("feed", "https://b.example/1")
    assert Interaction.create(source="s", channel="feed", native_id="https://b.example/2", kind="comment", in_reply_to=parent, thread_id=parent).in_reply_to == parent


def test_naive_datetimes_are_taken_as_utc_as_documented():
    from datetime import datetime

    rec = Interaction.create(source="s", channel="feed", native_id="n", kind="post", published=datetime(2026, 11, 2, 10, 0))
    assert rec.published.isoformat() == "2026-11-02T10:00:00+00:00"
