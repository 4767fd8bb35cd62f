"""Export layouts of the common review platforms, detected from the header or keys.

Each preset maps crmsync's review fields to the platform's columns (CSV) or
dotted keys (JSON, JSON Lines). ``generic`` is the fallback; any field can be
remapped in config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The fields a preset or mapping can name.
FIELDS = (
    "id", "rating", "scale", "best", "worst", "title", "body", "author_name", "author_email", "author_url",
    "author_handle", "published", "updated", "product", "product_id", "product_url", "url", "reply",
    "reply_date", "helpful_votes", "language",
)

STAR_WORDS = {"ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "FIVE": 5}


@dataclass(frozen=True)
class Preset:
    name: str
    formats: tuple[str, ...]  # csv, json, jsonl
    detect: frozenset[str]  # all of these headers/keys present
    fields: dict[str, str]
    scale: tuple[float, float] = (1, 5)
    records: str | None = None  # JSON: where the list of reviews is
    description: str = ""
    extra_detect: tuple[frozenset[str], ...] = field(default_factory=tuple)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "trustpilot", ("csv",), frozenset({"Review Stars", "Review Content"}),
            {"id": "Review ID", "rating": "Review Stars", "title": "Review Title", "body": "Review Content",
             "author_name": "Review Consumer User Name", "author_email": "Review Consumer Email", "published": "Review Created (UTC)",
             "language": "Review Language", "reply": "Reply Content", "reply_date": "Company Reply Date (UTC)",
             "product_id": "Business Unit ID", "product": "Domain URL", "url": "Review URL"},
            description="Trustpilot business review export (CSV).",
        ),
        Preset(
            "google_business", ("json", "jsonl"), frozenset({"starRating", "reviewer"}),
            {"id": "reviewId", "rating": "starRating", "body": "comment", "author_name": "reviewer.displayName",
             "author_url": "reviewer.profileUrl", "published": "createTime", "updated": "updateTime", "reply": "reviewReply.comment",
             "reply_date": "reviewReply.updateTime", "product_id": "locationName", "product": "locationTitle"},
            records="reviews",
            description="Google Business Profile reviews (Takeout / API JSON; starRating ONE..FIVE).",
        ),
        Preset(
            "app_store", ("json", "jsonl"), frozenset({"attributes.rating", "attributes.reviewerNickname"}),
            {"id": "id", "rating": "attributes.rating", "title": "attributes.title", "body": "attributes.body",
             "author_name": "attributes.reviewerNickname", "published": "attributes.createdDate",
             "product_id": "appId", "reply": "response.attributes.responseBody", "reply_date": "response.attributes.lastModifiedDate"},
            records="data",
            description="Apple App Store Connect customer reviews (API JSON).",
        ),
        Preset(
            "google_play", ("csv",), frozenset({"Package Name", "Star Rating", "Review Text"}),
            {"id": "Review Link", "rating": "Star Rating", "title": "Review Title", "body": "Review Text", "language": "Reviewer Language",
             "published": "Review Submit Millis Since Epoch", "updated": "Review Last Update Millis Since Epoch", "product_id": "Package Name",
             "reply": "Developer Reply Text", "reply_date": "Developer Reply Millis Since Epoch", "url": "Review Link"},
            description="Google Play Console reviews export (UTF-16 CSV).",
        ),
        Preset(
            "yelp", ("jsonl", "json"), frozenset({"review_id", "business_id", "stars"}),
            {"id": "review_id", "rating": "stars", "body": "text", "published": "date", "product_id": "business_id",
             "author_handle": "user_id", "helpful_votes": "useful"},
            description="Yelp open dataset (review.json, JSON Lines).",
        ),
        Preset(
            "amazon", ("jsonl", "json"), frozenset({"asin", "overall"}),
            {"id": "reviewID", "rating": "overall", "title": "summary", "body": "reviewText", "author_name": "reviewerName",
             "author_handle": "reviewerID", "published": "unixReviewTime", "product_id": "asin", "helpful_votes": "vote"},
            description="Amazon review data, 2014/2018 layout (overall, reviewText, asin).",
        ),
        Preset(
            "amazon_2023", ("jsonl", "json"), frozenset({"parent_asin", "rating", "text"}),
            {"rating": "rating", "title": "title", "body": "text", "author_handle": "user_id", "published": "timestamp",
             "product_id": "parent_asin", "helpful_votes": "helpful_vote"},
            description="Amazon Reviews'23 layout (rating, text, parent_asin, timestamp in ms).",
        ),
        Preset(
            "generic", ("csv", "json", "jsonl"), frozenset(),
            {"id": "review_id", "rating": "stars", "title": "title", "body": "body", "author_name": "reviewer_name",
             "author_email": "reviewer_email", "author_url": "reviewer_url", "published": "created_at", "product": "product",
             "product_id": "product_id", "url": "url", "reply": "reply", "helpful_votes": "helpful_votes", "language": "language"},
            description="Any export: map the fields in config (mapping); these are the default column names.",
        ),
    )
}


def detect(keys: set[str], fmt: str) -> str:
    """The preset whose marker columns/keys are all present (generic when none or several fit)."""
    fits = [p.name for p in PRESETS.values() if p.detect and fmt in p.formats and p.detect <= keys]
    return fits[0] if len(fits) == 1 else "generic"
