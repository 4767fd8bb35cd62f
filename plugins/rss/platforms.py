"""Recognize social platforms and blog engines from the feed itself.

So the author comes out with the platform's handle and profile URL (``u/name``
on Reddit, ``@name@instance`` on Mastodon), which identity matching uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from .parse import Entry, Feed


@dataclass
class Author:
    name: str | None
    email: str | None
    handles: list[str]
    profile_urls: list[str]
    platform: str | None


_MASTODON_POST = re.compile(r"^https?://([^/]+)/@([A-Za-z0-9_.]+)(?:@([^/]+))?/\d+")
_MASTODON_PROFILE = re.compile(r"^https?://([^/]+)/@([A-Za-z0-9_.]+)/?$")
_REDDIT_USER = re.compile(r"^https?://(?:www\.|old\.)?reddit\.com/u(?:ser)?/([A-Za-z0-9_-]+)")
_BSKY_PROFILE = re.compile(r"^https?://bsky\.app/profile/([^/]+)")
_YT_CHANNEL = re.compile(r"^https?://(?:www\.)?youtube\.com/(channel/[A-Za-z0-9_-]+|@[A-Za-z0-9_.-]+)")
_MEDIUM_USER = re.compile(r"^https?://medium\.com/@([A-Za-z0-9_.-]+)")
_TWITTER = re.compile(r"^https?://(?:www\.|mobile\.)?(?:twitter|x)\.com/@?([A-Za-z0-9_]{1,15})/?(?:[?#].*)?$", re.IGNORECASE)


def detect_platform(feed: Feed) -> str | None:
    """The platform or engine a feed comes from, judged from the feed itself."""
    gen = (feed.generator or "").lower()
    link = (feed.link or feed.self_url or "").lower()
    host = urlsplit(link).hostname or ""
    first = feed.entries[0].link if feed.entries else ""
    if "reddit.com" in host:
        return "reddit"
    if host == "bsky.app" or "bsky.app/profile" in link:
        return "bluesky"
    if "youtube.com" in host:
        return "youtube"
    if "hnrss" in link or "news.ycombinator.com" in link or "news.ycombinator.com" in (first or ""):
        return "hackernews"
    if "mastodon" in gen or _MASTODON_PROFILE.match(feed.link or "") or (first and _MASTODON_POST.match(first) and "/tags/" in (feed.self_url or link or "")):
        return "mastodon"
    if "discourse" in gen:
        return "discourse"
    if "medium.com" in host or "medium" in gen:
        return "medium"
    if "substack" in gen or host.endswith(".substack.com"):
        return "substack"
    if "ghost" in gen:
        return "ghost"
    if "wordpress" in gen:
        return "wordpress"
    return None


def author_of(feed: Feed, entry: Entry, platform: str | None, scope: str | None = None) -> Author | None:
    """The entry's author with handles and profile URLs as the platform has them.

    An author known by name alone (``dc:creator``, a forum's user name) gets a handle
    keyed by the site (the host of ``scope``, the feed's link or location) and the name:
    ``feed:forum.example:alice``, so their posts are one identity there and count for
    influence scoring. The same name on another site is another identity.
    """
    name, email, uri = entry.author_name, entry.author_email, entry.author_uri
    handles: list[str] = []
    urls: list[str] = []
    if platform == "mastodon":
        m = _MASTODON_POST.match(entry.link or "") or _MASTODON_PROFILE.match(feed.link or "")
        if m:
            host, user = m.group(1), m.group(2)
            instance = m.group(3) if m.lastindex and m.lastindex >= 3 and m.group(3) else host
            handles.append(f"mastodon:@{user}@{instance}")
            urls.append(f"https://{instance}/@{user}")
            name = name or f"@{user}@{instance}"
    elif platform == "reddit":
        m = _REDDIT_USER.match(uri or "")
        user = m.group(1) if m else (name or "").removeprefix("/u/").removeprefix("u/") or None
        if user:
            handles.append(f"reddit:u/{user}")
            urls.append(f"https://www.reddit.com/user/{user}")
            name = f"u/{user}"
    elif platform == "bluesky":
        m = _BSKY_PROFILE.match(uri or feed.link or "")
        if m:
            handles.append(f"bluesky:@{m.group(1)}")
            urls.append(f"https://bsky.app/profile/{m.group(1)}")
            name = name or feed.title
    elif platform == "youtube":
        m = _YT_CHANNEL.match(uri or "")
        if m:
            handles.append(f"youtube:{m.group(1)}")
            urls.append(f"https://www.youtube.com/{m.group(1)}")
    elif platform == "hackernews":
        user = (name or "").strip()
        if user:
            handles.append(f"hackernews:{user}")
            urls.append(f"https://news.ycombinator.com/user?id={user}")
    elif platform == "discourse":
        user = (name or "").strip().lstrip("@")
        base = feed.link or ""
        if user and base:
            parts = urlsplit(base)
            handles.append(f"discourse:{parts.hostname}:{user}")
            urls.append(f"{parts.scheme}://{parts.netloc}/u/{user}")
            name = f"@{user}"
    elif platform == "medium":
        m = _MEDIUM_USER.match(entry.link or "") or _MEDIUM_USER.match(feed.link or "")
        if m:
            handles.append(f"medium:@{m.group(1)}")
            urls.append(f"https://medium.com/@{m.group(1)}")
    if uri and uri not in urls:
        urls.append(uri)
    for u in list(urls):
        t = _TWITTER.match(u)
        if t and f"twitter:{t.group(1)}" not in handles:
            handles.append(f"twitter:{t.group(1)}")
    if name and re.fullmatch(r"@[A-Za-z0-9_]{1,30}", name.strip()) and not handles:
        # a bare @handle as the author name, as blogs syndicating social posts show it
        handles.append(f"{platform or 'web'}:{name.strip()[1:]}")
    if name and not (email or handles or urls):
        site = urlsplit(scope).netloc.lower() if scope and "://" in scope else (scope or feed.link or feed.title)
        if site:
            handles.append(f"feed:{site}:{name.strip()}")
    if not (name or email or handles or urls):
        return None
    return Author(name=name, email=email, handles=handles, profile_urls=urls, platform=platform)


def hn_item_id(url: str | None) -> str | None:
    """The Hacker News item id of a news.ycombinator.com link."""
    if not url or "news.ycombinator.com/item" not in url:
        return None
    return (parse_qs(urlsplit(url).query).get("id") or [None])[0]
