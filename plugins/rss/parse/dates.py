"""Dates as feeds write them, as aware UTC datetimes."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime


def parse_date(value: str | None) -> datetime | None:
    """RFC 822/2822 and RFC 3339/ISO 8601 dates, then the odd formats feedparser's date
    handlers know (W3C-DTF variants, Korean, Greek, Hungarian...), as aware UTC datetimes."""
    if not value:
        return None
    value = value.strip()
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            dt = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            dt = _parse_date_lenient(value)
            if dt is None:
                return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _parse_date_lenient(value: str) -> datetime | None:
    import calendar

    from feedparser.datetimes import _parse_date

    try:
        st = _parse_date(value)
        return datetime.fromtimestamp(calendar.timegm(st), UTC) if st else None
    except (ValueError, OverflowError, OSError):
        return None


__all__ = ["parse_date"]
