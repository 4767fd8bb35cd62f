"""Namespace URIs, and the variants feeds write for them.

Feeds spell namespaces in more ways than the specifications do: a trailing slash
or a different case (``http://wellformedweb.org/commentAPI/``), pre-release Atom
namespaces (``http://purl.org/echo/``, Atom 0.3 drafts), RSS 2.0 in a default
namespace (``http://backend.userland.com/rss2``). A document that uses one of them
has its element and attribute names rewritten to the canonical URI once, after
parsing, so the readers look each element up one way. A document that uses only
canonical URIs (nearly all) costs one regular-expression scan.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element

ATOM = "http://www.w3.org/2005/Atom"
ATOM03 = "http://purl.org/atom/ns#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RSS1 = "http://purl.org/rss/1.0/"
DC = "http://purl.org/dc/elements/1.1/"
DCTERMS = "http://purl.org/dc/terms/"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
THR = "http://purl.org/syndication/thread/1.0"
SLASH = "http://purl.org/rss/1.0/modules/slash/"
WFW = "http://wellformedweb.org/CommentAPI/"
MEDIA = "http://search.yahoo.com/mrss/"
ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
XHTML = "http://www.w3.org/1999/xhtml"
XML = "http://www.w3.org/XML/1998/namespace"

_CANONICAL = (ATOM, ATOM03, RDF, RSS1, DC, DCTERMS, CONTENT, THR, SLASH, WFW, MEDIA, ITUNES, XHTML, XML)
# normalized (lower case, no trailing slash or #) -> canonical; "" is no namespace
_VARIANTS = {u.lower().rstrip("/#"): u for u in _CANONICAL}
_VARIANTS.update(
    {
        # pre-release Atom
        "http://example.com/newformat": ATOM03,
        "http://example.com/necho": ATOM03,
        "http://purl.org/echo": ATOM03,
        "uri/of/echo/namespace": ATOM03,
        "http://purl.org/pie": ATOM03,
        # RSS 2.0 (and 0.91) written in a default namespace; RSS 0.90 read as RSS 1.0
        "http://backend.userland.com/rss2": "",
        "http://backend.userland.com/rss": "",
        "http://blogs.law.harvard.edu/tech/rss": "",
        "http://purl.org/rss/1.0/modules/rss091": "",
        "http://my.netscape.com/rdf/simple/0.9": RSS1,
        "http://example.com/dtds/podcast-1.0.dtd": ITUNES,
        "http://search.yahoo.com/mrss": MEDIA,
    }
)
_DECLARED = re.compile(rb"""xmlns(?::[\w.-]+)?\s*=\s*["']([^"']*)["']""")
_CANONICAL_SET = set(_CANONICAL)


def canonical(uri: str) -> str:
    """The canonical form of a namespace URI (itself when unknown)."""
    if uri in _CANONICAL_SET:
        return uri
    key = uri.strip().lower().rstrip("/#")
    if key.startswith("http://purl.org/atom/ns#draft-ietf-atompub") or key.startswith("http://purl.org/atom/ns"):
        return ATOM03
    return _VARIANTS.get(key, uri)


def variants_in(data: bytes) -> bool:
    """Whether the document declares a namespace in a non-canonical spelling."""
    for raw in set(_DECLARED.findall(data)):
        uri = raw.decode("utf-8", "replace")
        if uri not in _CANONICAL_SET and canonical(uri) != uri:
            return True
    return False


def rewrite(root: Element) -> None:
    """Rewrite every element's and attribute's namespace to its canonical URI."""
    cache: dict[str, str] = {}

    def fix(name: str) -> str:
        if not name.startswith("{"):
            return name
        got = cache.get(name)
        if got is None:
            uri, _, local = name[1:].partition("}")
            new = canonical(uri)
            got = cache[name] = (f"{{{new}}}{local}" if new else local) if new != uri else name
        return got

    for el in root.iter():
        if isinstance(el.tag, str):
            el.tag = fix(el.tag)
        if el.attrib and any(k.startswith("{") for k in el.attrib):
            el.attrib = {fix(k): v for k, v in el.attrib.items()}


__all__ = ["ATOM", "ATOM03", "CONTENT", "DC", "DCTERMS", "ITUNES", "MEDIA", "RDF", "RSS1", "SLASH", "THR", "WFW", "XHTML", "XML", "canonical", "rewrite", "variants_in"]
