"""Secrets: option values given as references (``env:NAME``, ``file:PATH`` or a
plugin's scheme), resolved when an instance starts and kept out of every log
line, report and error (:func:`redact`)."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contract.errors import ConfigError

if TYPE_CHECKING:
    from .plugins import PluginHost


class Secret:
    """A secret option's value. Prints as its reference, never as the value.

    Call :meth:`get` where the value is needed (a login), nowhere else.
    """

    __slots__ = ("_value", "reference")

    def __init__(self, value: str, reference: str) -> None:
        self._value = value
        self.reference = reference
        register_secret_value(value)

    def get(self) -> str:
        """The secret value."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.reference!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self.reference)


_secret_values: set[str] = set()
_secret_lock = threading.Lock()


def register_secret_value(value: str) -> None:
    """Remember a value to redact from logs, reports and errors."""
    if value and len(value) >= 3:
        with _secret_lock:
            _secret_values.add(value)


def redact(text: str) -> str:
    """``text`` with every known secret value replaced by ``***``."""
    if not _secret_values or not text:
        return text
    for value in sorted(_secret_values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, "***")
    return text


def url_password(url: str) -> str | None:
    """The password of a URL's user part, found by its structure: what lies between
    the first ``:`` after the user name and the *last* ``@`` (a password may hold an
    unencoded ``@``, ``/`` or ``:``; a host cannot hold ``@``). ``None`` when the URL
    carries none."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        return None
    rest = url[scheme_end + 3 :]
    at = rest.rfind("@")
    if at < 0:
        return None
    user, colon, password = rest[:at].partition(":")
    return password if colon and password else None


def redact_url(url: str) -> str:
    """A URL with its password, found by :func:`url_password`, hidden as ``***``."""
    password = url_password(url)
    if password is None:
        return url
    start = url.find("://") + 3
    at = url.rfind("@")
    user = url[start:at].partition(":")[0]
    return f"{url[:start]}{user}:***{url[at:]}"


_SCHEME = re.compile(r"^[a-z][a-z0-9_+.-]{0,30}$")


def resolve_reference(ref: str, *, where: str, host: PluginHost | None = None, base: Path | None = None) -> str:
    """Resolve ``env:NAME``, ``file:PATH`` or a scheme a plugin resolves (``resolve_secret``).

    Anything else is a literal secret: it is refused, and neither it nor any part of
    it (such as what precedes a colon in it) appears in the message or anywhere else.
    """
    scheme, _, rest = ref.partition(":")
    if rest and _SCHEME.match(scheme):
        if scheme == "env":
            if rest not in os.environ:
                msg = f"{where}: environment variable {rest} is not set"
                raise ConfigError(msg)
            return os.environ[rest]
        if scheme == "file":
            p = Path(rest).expanduser()
            if not p.is_absolute() and base is not None:
                p = base / p
            try:
                return p.read_text(encoding="utf-8").strip()
            except OSError as exc:
                msg = f"{where}: cannot read secret file {p}: {exc.strerror}"
                raise ConfigError(msg) from None
        value = host.resolve_secret(scheme, rest) if host is not None else None
        if value is not None:
            return str(value)
    register_secret_value(ref)  # a literal: it must show up nowhere, whatever happens next
    msg = (
        f"{where}: a secret must be a reference like 'env:NAME' or 'file:PATH' (or a scheme an installed plugin resolves), "
        "not a literal value"
    )
    raise ConfigError(msg)


def secret_paths(schema: dict[str, Any], prefix: str = "") -> tuple[str, ...]:
    """Dotted paths of the options a schema marks ``"secret": true`` (nested objects included)."""
    out: list[str] = []
    for key, sub in schema.get("properties", {}).items():
        if sub.get("secret"):
            out.append(prefix + key)
        elif sub.get("type") == "object":
            out.extend(secret_paths(sub, f"{prefix}{key}."))
    return tuple(out)
