"""Identity resolution: link each interaction's author to the right CRM record.

A matching ladder, each match recorded with its method, evidence and
confidence:

1. the CRM's own id on the author, or a decision confirmed in the review queue;
2. canonical email (lower-cased, IDNA domain, ``+tags`` dropped, Gmail dots
   ignored, googlemail = gmail); role addresses (info@, noreply@, ...) never link;
3. normalized profile URL, or the same handle on the same platform
   (twitter.com = x.com, ``www.``/``m.`` dropped, tracking parameters and
   trailing slashes ignored);
4. a fuzzy name (rapidfuzz) only together with a second signal (the same
   company email domain, or the same home URL host), and only ever as a
   candidate for review, never an automatic link.

Everything is looked up in hash indexes (blocking), so matching is linear in
the number of interactions, not quadratic. Plugins add matchers through the
``register_matchers`` hook.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...contract.base import Match
from ...contract.schema import Identity, Interaction

ROLE_LOCALPARTS = frozenset(
    {
        "info", "noreply", "no-reply", "donotreply", "do-not-reply", "support", "sales", "admin", "contact", "hello", "help",
        "office", "team", "marketing", "billing", "postmaster", "mailer-daemon", "webmaster", "abuse", "security", "privacy",
        "press", "jobs", "careers", "orders", "service", "enquiries", "inquiries", "feedback", "newsletter", "notifications",
        "bounce", "bounces", "reply", "mail", "hr", "legal", "accounts", "accounting",
    }
)
FREE_MAIL = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "yahoo.com", "icloud.com", "me.com",
        "gmx.de", "gmx.net", "web.de", "proton.me", "protonmail.com", "aol.com", "mail.ru", "yandex.ru", "orange.fr",
        "free.fr", "libero.it", "qq.com", "163.com", "t-online.de", "zoho.com", "fastmail.com",
    }
)
TRACKING_PARAMS = re.compile(r"^(utm_.*|fbclid|gclid|mc_cid|mc_eid|ref|ref_src|ref_url|source|s|t|si|igshid|_ga)$", re.IGNORECASE)
HOST_ALIASES = {"twitter.com": "x.com", "mobile.twitter.com": "x.com", "googlemail.com": "gmail.com"}
PLATFORM_ALIASES = {"x": "twitter", "web": "twitter"}  # a bare @name on the web is, in practice, a Twitter/X handle
_SOCIAL_PATH = {
    "x.com": ("twitter", re.compile(r"^/@?([A-Za-z0-9_]{1,15})/?$")),
    "instagram.com": ("instagram", re.compile(r"^/([A-Za-z0-9_.]{1,30})/?$")),
    "github.com": ("github", re.compile(r"^/([A-Za-z0-9-]{1,39})/?$")),
    "medium.com": ("medium", re.compile(r"^/@([A-Za-z0-9_.-]+)/?$")),
    "reddit.com": ("reddit", re.compile(r"^/u(?:ser)?/([A-Za-z0-9_-]+)/?$")),
    "linkedin.com": ("linkedin", re.compile(r"^/in/([A-Za-z0-9_-]+)/?$")),
}


def canonical_email(address: str | None) -> str | None:
    """The canonical form of an email address, or ``None`` if it is not one."""
    if not address or "@" not in address:
        return None
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if not local or not domain or " " in local:
        return None
    domain = domain.strip().rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    domain = HOST_ALIASES.get(domain, domain)
    local = local.lower().split("+", 1)[0]
    if domain == "gmail.com":
        local = local.replace(".", "")
    return f"{local}@{domain}" if local else None


def is_role_address(address: str | None) -> bool:
    """info@, noreply@, support@ ...: never used to link a person."""
    if not address or "@" not in address:
        return False
    return address.strip().lower().rpartition("@")[0].split("+", 1)[0] in ROLE_LOCALPARTS


def canonical_url(url: str | None) -> str | None:
    """A profile URL compared by what it identifies: host case, www/m, twitter = x, tracking, slashes."""
    if not url:
        return None
    url = url.strip()
    if "://" not in url:
        url = "https://" + url
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    for prefix in ("www.", "m.", "mobile."):
        if host.startswith(prefix):
            host = host[len(prefix):]
    host = HOST_ALIASES.get(host, host)
    if not host:
        return None
    path = parts.path.rstrip("/") or ""
    if host in _SOCIAL_PATH:
        path = path.lower()
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if not TRACKING_PARAMS.match(k)])
    return urlunsplit(("https", host, path, query, ""))


def handle_from_url(url: str | None) -> tuple[str, str] | None:
    """``(platform, handle)`` of a social profile URL (x.com/name -> ("twitter", "name"))."""
    canon = canonical_url(url)
    if not canon:
        return None
    parts = urlsplit(canon)
    spec = _SOCIAL_PATH.get(parts.hostname or "")
    if spec:
        m = spec[1].match(parts.path or "/")
        if m:
            return spec[0], m.group(1).lower()
    m = re.match(r"^/@([A-Za-z0-9_.]+)/?$", parts.path or "")
    if m:  # Mastodon-style https://instance/@user
        return "mastodon", f"@{m.group(1).lower()}@{parts.hostname}"
    return None


SOCIAL_PLATFORMS = frozenset({"twitter", "mastodon", "reddit", "bluesky", "youtube", "github", "instagram", "linkedin", "medium", "hackernews", "discourse", "tiktok", "facebook"})


def canonical_handle(handle: str) -> tuple[str, str] | None:
    """``platform:handle`` (or a bare ``@name``) as ``(platform, lower-cased handle)``.

    A handle given as a profile URL is read from the URL.
    """
    handle = handle.strip()
    if not handle:
        return None
    if handle.startswith(("http://", "https://")):
        return handle_from_url(handle)
    platform, sep, name = handle.partition(":")
    if not sep:
        platform, name = "twitter", handle
    name = name.strip()
    if name.startswith(("http://", "https://")) or name.startswith(("twitter.com/", "x.com/", "www.twitter.com/")):
        return handle_from_url(name)
    platform = PLATFORM_ALIASES.get(platform.lower(), platform.lower())
    if platform != "mastodon":
        name = name.lstrip("@")
    return (platform, name.lower()) if name else None


def identity_keys(person: Identity) -> list[tuple[str, str]]:
    """Every key the person can be found by: ``("email", ...)``, ``("url", ...)``, ``("handle", ...)``."""
    keys: list[tuple[str, str]] = []
    for email in person.emails:
        canon = canonical_email(email)
        if canon and not is_role_address(email):
            keys.append(("email", canon))
    for url in person.profile_urls:
        canon = canonical_url(url)
        if canon:
            keys.append(("url", canon))
        h = handle_from_url(url)
        if h:
            keys.append(("handle", f"{h[0]}:{h[1]}"))
    for handle in person.handles:
        h = canonical_handle(handle)
        if h:
            keys.append(("handle", f"{h[0]}:{h[1]}"))
            platform, _, raw = handle.partition(":")
            if h[0] not in SOCIAL_PLATFORMS and raw.strip().startswith("@"):
                # an @name on a review site or blog: in practice the person's Twitter/X handle
                keys.append(("handle", f"twitter:{h[1]}"))
    if person.name and re.fullmatch(r"@[A-Za-z0-9_]{1,15}", person.name.strip()):
        keys.append(("handle", f"twitter:{person.name.strip()[1:].lower()}"))
    seen: set[tuple[str, str]] = set()
    return [k for k in keys if not (k in seen or seen.add(k))]


def contact_entries(c: Identity) -> Iterator[tuple[str, Any]]:
    """Where a contact is indexed: ``("key", identity key)``, ``("email", raw address)``,
    ``("domain", company mail domain)`` and ``("host", home page host)``."""
    for key in identity_keys(c):
        yield "key", key
    for email in c.emails:
        yield "email", email.strip().lower()
        domain = email.strip().lower().rpartition("@")[2]
        if domain and domain not in FREE_MAIL:
            yield "domain", domain
    for url in c.profile_urls:
        host = urlsplit(canonical_url(url) or "").hostname
        # a home page's host is a second signal; a platform's (x.com, github.com,
        # a Mastodon instance) is shared by thousands of strangers: no signal at all
        if host and host not in _SOCIAL_PATH and handle_from_url(url) is None:
            yield "host", host


class Matcher(Protocol):
    """A plugin matcher (``register_matchers``): proposes matches for an author."""

    name: str

    def match(self, author: Identity, index: ContactIndex) -> Iterable[Match]: ...


class _Contacts(Mapping[str, Identity]):
    """``identity_id -> Identity`` of the contacts, kept as compact JSON and parsed on
    access: a CRM's 20,000 contacts take 6 MB instead of 47 as model objects (the
    index lives in the run's process and every source worker)."""

    def __init__(self) -> None:
        self._raw: dict[str, bytes] = {}

    def __getitem__(self, contact_id: str) -> Identity:
        return Identity.model_validate_json(self._raw[contact_id])

    def __contains__(self, contact_id: object) -> bool:
        return contact_id in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class ContactIndex:
    """The CRM's contacts, indexed by every key (blocking for the matchers)."""

    def __init__(self, contacts: Iterable[Identity]) -> None:
        self.contacts = _Contacts()
        # key -> the contact id, or the set of them when several share the key (read
        # them with ids()): most keys are one person's, and a set each would double the index
        self.by_key: dict[tuple[str, str], str | set[str]] = {}
        self.by_raw_email: dict[str, str | set[str]] = {}
        self.by_domain: dict[str, str | set[str]] = {}
        self.by_host: dict[str, str | set[str]] = {}
        self._names: dict[int, dict[str, dict[str, str]]] = {}
        for c in contacts:
            self._add(c)

    def update(self, contacts: Iterable[Identity]) -> None:
        """Re-index contacts that changed (new keys, a new name, removed from the CRM)."""
        for c in contacts:
            if c.identity_id in self.contacts:
                self._remove(self.contacts[c.identity_id])
            self._add(c)
        self._names.clear()

    @staticmethod
    def ids(table: dict[Any, str | set[str]], key: Any) -> set[str]:
        """The contact ids under ``key`` in one of the tables (``by_key``, ``by_domain`` ...)."""
        got = table.get(key)
        if got is None:
            return set()
        return {got} if isinstance(got, str) else set(got)

    def _entries(self, c: Identity) -> Iterator[tuple[dict[Any, str | set[str]], Any]]:
        tables = {"key": self.by_key, "email": self.by_raw_email, "domain": self.by_domain, "host": self.by_host}
        for table, key in contact_entries(c):
            yield tables[table], key

    def _add(self, c: Identity) -> None:
        if not c.crm_ids or c.removed or not c.identity_id:
            return
        self.contacts._raw[c.identity_id] = c.__pydantic_serializer__.to_json(c, exclude_defaults=True)
        cid = c.identity_id
        for table, key in self._entries(c):
            got = table.get(key)
            if got is None:
                table[key] = cid
            elif isinstance(got, str):
                if got != cid:
                    table[key] = {got, cid}
            else:
                got.add(cid)

    def _remove(self, c: Identity) -> None:
        assert c.identity_id is not None
        for table, key in self._entries(c):
            got = table.get(key)
            if got == c.identity_id:
                del table[key]
            elif isinstance(got, set):
                got.discard(c.identity_id)
                if len(got) == 1:
                    table[key] = got.pop()
        del self.contacts._raw[c.identity_id]

    def __len__(self) -> int:
        return len(self.contacts)

    def names_in(self, block: dict[str, str | set[str]], key: str) -> dict[str, str]:
        """``contact id -> name`` of one block (``by_domain`` or ``by_host``), made once."""
        cache = self._names.setdefault(id(block), {})
        names = cache.get(key)
        if names is None:
            names = cache[key] = {cid: self.contacts[cid].name or "" for cid in sorted(self.ids(block, key))}
        return names


CONFIDENCE = {"crm_id": 1.0, "confirmed": 1.0, "email_exact": 0.99, "email_canonical": 0.97, "profile_url": 0.95, "handle": 0.92}


class Resolver:
    """Links authors to contacts through the ladder; proposes fuzzy candidates for review."""

    def __init__(
        self,
        index: ContactIndex,
        *,
        decisions: dict[str, dict[str, str]] | None = None,
        matchers: Iterable[Matcher] = (),
        auto_link_threshold: float = 0.9,
        fuzzy_threshold: int = 88,
    ) -> None:
        self.index = index
        self.decisions = decisions or {}  # author identity_id -> {contact_id: "accepted"|"rejected"}
        self.matchers = list(matchers)
        self.threshold = auto_link_threshold
        self.fuzzy_threshold = fuzzy_threshold
        self._fuzzy_cache: dict[tuple[Any, ...], list[Match]] = {}

    def refresh(self, contacts: Iterable[Identity]) -> None:
        """Take in contacts that changed since the index was built."""
        self.index.update(contacts)
        self._fuzzy_cache.clear()

    def resolve(self, author: Identity) -> tuple[Match | None, list[Match]]:
        """The automatic link (if any) and candidates for the review queue."""
        if not self.index.contacts:
            return None, []
        decided = self.decisions.get(author.identity_id or "", {})
        for contact_id, verdict in decided.items():
            if verdict == "accepted" and contact_id in self.index.contacts:
                c = self.index.contacts[contact_id]
                return Match(contact_id, dict(c.crm_ids), "confirmed", 1.0, {"decision": "accepted in review"}), []
        rejected = {cid for cid, v in decided.items() if v == "rejected"}
        found: list[Match] = []
        for email in author.emails:
            if is_role_address(email):
                continue
            exact = self.index.ids(self.index.by_raw_email, email.strip().lower()) - rejected
            if exact:
                found.extend(self._matches(exact, "email_exact", {"email": email}))
                continue
            canon = canonical_email(email)
            hits = self.index.ids(self.index.by_key, ("email", canon)) - rejected if canon else set()
            found.extend(self._matches(hits, "email_canonical", {"email": email, "canonical": canon}))
        if not found:
            for kind, key in identity_keys(author):
                if kind == "email":
                    continue
                hits = self.index.ids(self.index.by_key, (kind, key)) - rejected
                found.extend(self._matches(hits, "profile_url" if kind == "url" else "handle", {kind: key}))
        for matcher in self.matchers:
            found.extend(m for m in matcher.match(author, self.index) if m.contact_id not in rejected)
        if found:
            best = max(m.confidence for m in found)
            top = {m.contact_id: m for m in found if m.confidence == best}
            if len(top) == 1 and best >= self.threshold:
                return next(iter(top.values())), []
            # several contacts share the key, or a weak plugin match: a human decides
            return None, [*top.values()]
        return None, self._fuzzy(author, rejected)

    def _matches(self, contact_ids: set[str], method: str, evidence: dict[str, Any]) -> list[Match]:
        return [Match(cid, dict(self.index.contacts[cid].crm_ids), method, CONFIDENCE[method], dict(evidence)) for cid in sorted(contact_ids)]

    def _fuzzy(self, author: Identity, rejected: set[str]) -> list[Match]:
        """Name similarity inside a block that already shares a second signal.

        A block (one company's contacts) grows with the CRM, and the same unknown
        author comes back in every interaction: each block's names are scored in one
        rapidfuzz call (its C loop, not Python's), and an author's result is kept."""
        if not author.name:
            return []
        domains, hosts = fuzzy_blocks(author)
        key = (author.name, domains, hosts, frozenset(rejected))
        cached = self._fuzzy_cache.get(key)
        if cached is None:
            cached = self._fuzzy_uncached(author.name, domains, hosts, rejected)
            if len(self._fuzzy_cache) >= 20_000:
                self._fuzzy_cache.clear()
            self._fuzzy_cache[key] = cached
        return [Match(m.contact_id, dict(m.crm_ids), m.method, m.confidence, dict(m.evidence)) for m in cached]

    def _fuzzy_uncached(self, name: str, domains: tuple[str, ...], hosts: tuple[str, ...], rejected: set[str]) -> list[Match]:
        from rapidfuzz import fuzz, process

        scored: dict[str, tuple[float, str]] = {}  # contact id -> (score, second signal); the first signal wins
        blocks = [(self.index.by_domain, d, f"same company email domain {d}") for d in domains]
        blocks += [(self.index.by_host, h, f"same home URL host {h}") for h in hosts]
        for block, block_key, signal in blocks:
            names = self.index.names_in(block, block_key)
            if not names:
                continue
            for _name, score, cid in process.extract(name, names, scorer=fuzz.token_sort_ratio, score_cutoff=self.fuzzy_threshold, limit=None):
                if cid not in rejected and cid not in scored:
                    scored[cid] = (score, signal)
        out = []
        for cid, (score, signal) in scored.items():
            contact = self.index.contacts[cid]
            out.append(Match(cid, dict(contact.crm_ids), "fuzzy_name", round(0.5 + score / 500, 3), {"name": name, "contact_name": contact.name, "score": score, "second_signal": signal}))
        return sorted(out, key=lambda m: -m.confidence)[:3]



def fuzzy_blocks(author: Identity) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The blocks the fuzzy rung compares an author's name within: the domains of its
    addresses and the hosts of its profile URLs."""
    domains = tuple(dict.fromkeys(e.strip().lower().rpartition("@")[2] for e in author.emails))
    hosts = tuple(dict.fromkeys(h for h in (urlsplit(canonical_url(u) or "").hostname for u in author.profile_urls) if h))
    return domains, hosts


def cluster_keys(person: Identity) -> list[str]:
    """:func:`identity_keys` as the store's cluster table holds them: ``kind:value``."""
    return [f"{k}:{v}" for k, v in identity_keys(person)]

def link(rec: Interaction, match: Match) -> Interaction:
    """The interaction with its author linked to the matched contact."""
    author = rec.author.model_copy(update={"identity_id": match.contact_id, "crm_ids": {**rec.author.crm_ids, **match.crm_ids}}) if rec.author else None
    extra = {**rec.extra, "identity_match": {"method": match.method, "confidence": match.confidence, "evidence": match.evidence}}
    linked = rec.model_copy(update={"author": author, "extra": extra})
    linked.content_hash = linked.compute_content_hash()
    return linked


__all__ = [
    "ContactIndex", "Match", "Matcher", "Resolver", "canonical_email", "canonical_handle", "canonical_url",
    "cluster_keys", "contact_entries", "handle_from_url", "identity_keys", "is_role_address", "link",
]
