"""Feed parsing: RSS 0.9x/1.0/2.0, Atom 0.3/1.0 (and its pre-release namespaces),
CDF and JSON Feed 1.0/1.1.

XML goes through defusedxml: entity declarations (billion laughs) and external
entities are refused, and nothing is ever fetched. The encoding is found as feed
readers find it (:mod:`crmsync_rss.encoding`); namespaces are made canonical
(:mod:`.namespaces`); each format's reader is in :mod:`.xmlfeeds` or :mod:`.jsonfeed`.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from ..encoding import to_parser_bytes
from .dates import parse_date
from .jsonfeed import parse_json_feed
from .lenient import parse_lenient, repair
from .model import Entry, Feed, FeedError, TruncatedFeed
from .namespaces import ATOM, ATOM03, RDF, rewrite, variants_in
from .xmlfeeds import read_atom, read_cdf, read_rdf, read_rss

_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
# expat's "no element found", "unclosed token", "partial character", "unclosed CDATA
# section": the input ended inside the document
_CUT_SHORT = {3, 5, 6, 20}


def parse_feed(data: bytes, *, recover: bool = True, charset: str | None = None, base: str | None = None) -> Feed:
    """Parse a feed document; raise :class:`FeedError` with the reason.

    ``charset`` is the HTTP Content-Type's; ``base`` the document's URL, against
    which relative links resolve (after any ``xml:base``). Well-formed XML takes the
    fast path (ElementTree through defusedxml). A document that ends before its root
    is closed raises :class:`TruncatedFeed`: none of it is read, so a cut item never
    becomes a record. Any other ill-formed document is repaired (HTML named entities,
    bare ``&``, junk before the root) and, failing that, read by feedparser's lenient
    parser, as a mature reader would; ``Feed.recovered`` then says how. Entity
    declarations are refused before any parser sees the document.
    """
    data, decoded = to_parser_bytes(data, charset)
    feed = _parse(data, recover, base)
    if decoded:
        feed.recovered = f"{decoded}; {feed.recovered}" if feed.recovered else decoded
    return feed


def _parse(data: bytes, recover: bool, base: str | None) -> Feed:
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        return parse_json_feed(data)
    if _ENTITY_DECL.search(data):
        msg = "refused unsafe XML: entity declarations (billion laughs, external entities) are not allowed"
        raise FeedError(msg)
    try:
        return _parse_xml(data, base)
    except ParseError as exc:
        _check_cut_short(exc)
        if not recover:
            msg = f"malformed XML: {exc}"
            raise FeedError(msg) from None
        first_error = str(exc)
    repaired = repair(data)
    if repaired != data:
        try:
            feed = _parse_xml(repaired, base)
            feed.recovered = f"repaired ill-formed XML ({first_error})"
            return feed
        except ParseError as exc:
            _check_cut_short(exc)
    feed_or_none = parse_lenient(data)
    if feed_or_none is None:
        msg = f"malformed XML: {first_error}"
        raise FeedError(msg)
    feed_or_none.recovered = f"read with feedparser's lenient parser ({first_error})"
    return feed_or_none


def _check_cut_short(exc: ParseError) -> None:
    if getattr(exc, "code", None) in _CUT_SHORT:
        msg = f"the document ends before its root element is closed ({exc}): cut short in transfer, or still being written"
        raise TruncatedFeed(msg) from None


def _parse_xml(data: bytes, base: str | None) -> Feed:
    try:
        root = SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        msg = f"refused unsafe XML ({type(exc).__name__}: entity declarations and external references are not allowed)"
        raise FeedError(msg) from None
    if variants_in(data):
        rewrite(root)
    tag = root.tag
    if tag == "rss":
        return read_rss(root, base)
    if tag == f"{{{RDF}}}RDF":
        return read_rdf(root, base)
    if tag in (f"{{{ATOM}}}feed", f"{{{ATOM03}}}feed", "feed"):
        return read_atom(root, ATOM if ATOM in tag else (ATOM03 if ATOM03 in tag else ""), base)
    if isinstance(tag, str) and tag.upper() == "CHANNEL":
        return read_cdf(root, base)
    msg = f"not a feed: root element is <{tag}>"
    raise FeedError(msg)


__all__ = ["Entry", "Feed", "FeedError", "TruncatedFeed", "parse_date", "parse_feed"]
