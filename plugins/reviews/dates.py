"""Dates in review exports: every form the platforms use, plus the ones a user names."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

DATE_FORMATS = (
    "%d-%b-%y", "%d-%b-%Y", "%d %b %Y", "%b %d, %Y", "%m %d, %Y", "%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d",
    "%d.%m.%Y", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p",
)


def parse_date(value: Any, formats: Sequence[str] = (), tz: tzinfo = UTC) -> datetime | None:
    """Every date form exports use: ISO 8601 with or without zone, epoch seconds or
    milliseconds, ``31-Jul-18``, ``09 13, 2009``, ``Jul 31, 2018``, RFC 822 ...; first
    the ``formats`` given (strptime, e.g. ``%d.%m.%Y %H:%M``). A date without a zone
    is in ``tz``; the result is UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        n = float(value)
        return datetime.fromtimestamp(n / 1000 if abs(n) > 10**11 else n, UTC)
    s = str(value).strip()

    def utc(dt: datetime) -> datetime:
        return (dt if dt.tzinfo else dt.replace(tzinfo=tz)).astimezone(UTC)

    for fmt in formats:
        try:
            return utc(datetime.strptime(s, fmt))
        except ValueError:
            continue
    try:
        return utc(datetime.fromisoformat(s.replace("Z", "+00:00")))
    except ValueError:
        pass
    for fmt in DATE_FORMATS:
        try:
            return utc(datetime.strptime(s, fmt))
        except ValueError:
            continue
    import email.utils

    try:
        return utc(email.utils.parsedate_to_datetime(s))
    except (TypeError, ValueError, IndexError):
        pass
    hint = "; set date_format (e.g. \"%d.%m.%Y %H:%M\") for this export's form" if not formats else f"; it matches none of date_format {list(formats)}"
    msg = f"unrecognized date {s!r}{hint}"
    raise ValueError(msg)


__all__ = ["DATE_FORMATS", "parse_date"]
