"""Brand and product listening rules: which names an interaction mentions.

Matching is case- and accent-insensitive and on whole words; a name also
matches as a hashtag (``#AcmeRocket``) or @mention (``@acme``), spaces
removed. Shared by the rss listener and the mention enricher.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping


def fold(text: str) -> str:
    """Lower-case, accents removed, compatibility forms unified (``Ünïcödé`` -> ``unicode``)."""
    if text.isascii():
        return text.lower()  # NFKD leaves ASCII as it is, and casefold is lower there
    decomposed = unicodedata.normalize("NFKD", text)
    if decomposed.isascii():
        return decomposed.lower()
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


class BrandRules:
    """Include and exclude terms, each a name with optional aliases.

    ``terms`` maps a canonical name to its aliases (or is a list of names).
    :meth:`mentions` returns the canonical names a text mentions;
    :meth:`excluded` whether an exclude phrase occurs.
    """

    def __init__(self, terms: Mapping[str, Iterable[str]] | Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        if not isinstance(terms, Mapping):
            terms = {t: () for t in terms}
        self.canonical: dict[str, str] = {}
        for name, aliases in terms.items():
            for variant in (name, *aliases):
                folded = fold(variant).strip()
                if folded:
                    self.canonical[folded] = name
                    self.canonical.setdefault(folded.replace(" ", ""), name)
        self._include = self._compile(self.canonical)
        self._exclude = self._compile({fold(e).strip(): e for e in exclude if e.strip()})

    @staticmethod
    def _compile(variants: Mapping[str, str]) -> re.Pattern[str] | None:
        if not variants:
            return None
        # longest first, so "acme rocket" wins over "acme"
        alts = "|".join(re.escape(v).replace(r"\ ", r"\s+") for v in sorted(variants, key=len, reverse=True))
        return re.compile(rf"(?<![\w])[#@]?({alts})(?![\w])")

    @property
    def active(self) -> bool:
        """Whether any include term is configured."""
        return self._include is not None

    def mentions(self, *texts: str | None) -> list[str]:
        """Canonical names mentioned in the texts, in first-seen order."""
        if self._include is None:
            return []
        found: list[str] = []
        for text in texts:
            if not text:
                continue
            for m in self._include.finditer(fold(text)):
                name = self.canonical.get(re.sub(r"\s+", " ", m.group(1)))
                if name and name not in found:
                    found.append(name)
        return found

    def excluded(self, *texts: str | None) -> bool:
        """Whether an exclude phrase occurs in the texts."""
        if self._exclude is None:
            return False
        return any(self._exclude.search(fold(t)) for t in texts if t)


__all__ = ["BrandRules", "fold"]
