"""The new text of a reply: what the sender wrote, without the quoted message,
the quote header ("On ... wrote:") and the signature.

mail-parser-reply does most of the reading, with its patterns compiled once per set
of languages (it compiles them for every message otherwise: a third of its time).
crmsync adds what it misses, measured on mailgun/talon's reply fixtures
(``bench/bench_reply.py``):

* quote headers of mail clients in any language, recognised by their shape: a date
  or a name with an address ending in ``:`` ("2014-10-17 11:28 GMT+03:00 Postmaster
  <p@x>:"), "On ... wrote:" broken over lines, "---- Name wrote ----", a bold
  Outlook "*From:*" block;
* Russian and Portuguese headers and signatures (``reply_languages`` "ru", "pt");
* replies written *below* the quote (bottom-posting): the unquoted text after it.
"""

from __future__ import annotations

import functools
import re
from typing import Any

#: Languages crmsync adds to mail-parser-reply's (same keys as its MAIL_LANGUAGES).
EXTRA_LANGUAGES: dict[str, dict[str, Any]] = {
    "ru": {
        "wrote_header": r"^(?:> ?)*.{0,200}?(?:написал|написала|написал\(а\)|пишет|пользователь .{0,120} написал)\s*:?$",
        "from_header": r"((?:(?:^|\n|\n(?:> ?)*)[* ]*(?:От|Отправлено|Кому|Тема|Дата|Копия):[ *]*(?:\s{,2}).*){2,}(?:\n.*){,1})",
        "disclaimers": ["Внимание:", "Конфиденциально:"],
        "signatures": ["С уважением", "С наилучшими пожеланиями", "Спасибо,", "Всего доброго"],
        "sent_from": "Отправлено с|Отправлено из",
    },
    "pt": {
        "wrote_header": r"^(?:> ?)*(?:Em|No dia)\s.{0,200}?escreveu:$",
        "from_header": r"((?:(?:^|\n|\n(?:> ?)*)[* ]*(?:De|Enviado|Enviada|Para|Assunto|Data|Cc):[ *]*(?:\s{,2}).*){2,}(?:\n.*){,1})",
        "disclaimers": ["Aviso:", "Confidencial:"],
        "signatures": ["Atenciosamente", "Cumprimentos", "Obrigad[oa],", "Abraços"],
        "sent_from": "Enviado do meu|Enviado de",
    },
}

# quote headers by their shape, whatever the language
_EMAIL = r"[^\s<>@\"]+@[^\s<>@\"]+"
_VERBS = r"(?:wrote|sent|schrieb|a écrit|escribió|ha scritto|napisał|schreef|skrev|escreveu|написал|написала|написал\(а\))"
_HEADER_FIELDS = r"(?:From|Sent|Date|To|Subject|Cc|Von|Gesendet|Datum|An|Betreff|De|Envoyé|Enviado|Para|Asunto|Objet|От|Отправлено|Кому|Тема|Дата)"
_SHAPES = [
    # "On <date>, <name> wrote:" broken over up to four lines ("<\nmailto:...> wrote:")
    re.compile(rf"^[ \t>]*-*\s*On\s[^\n]{{0,200}}(?:\n[^\n]{{0,200}}){{0,4}}?\b{_VERBS}\s*:\s*$", re.MULTILINE),
    # "<date> <name> <address>:" as Gmail and Android write it in many languages, the address maybe on the next line
    re.compile(rf"^[ \t>]*\d{{1,4}}[./-]\d{{1,2}}[./-]\d{{1,4}}[^\n]{{0,160}}(?:\n[^\n]{{0,160}})?{_EMAIL}>?[^\n]{{0,80}}:\s*$", re.MULTILINE),
    re.compile(rf"^[ \t>]*[^\n]{{0,120}}<\s*(?:\n\s*)?{_EMAIL}\s*>\s*{_VERBS}?\s*:\s*$", re.MULTILINE),
    # "<weekday, date> at <time>, <name> wrote:" in any language: a time, then the verb and a colon
    re.compile(rf"^[ \t>]*[^\n]{{0,200}}\b\d{{1,2}}:\d{{2}}\b[^\n]{{0,200}}{_VERBS}\s*:\s*$", re.MULTILINE),
    # "---- Name wrote ----" (Android), "-----Original Message-----"
    re.compile(r"^[ \t>]*-{2,}\s*[^\n]{0,120}\bwrote\s*-{2,}\s*$", re.MULTILINE),
    re.compile(r"^[ \t>]*-{3,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|Исходное сообщение)\s*-{3,}", re.MULTILINE | re.IGNORECASE),
    # a header block (Outlook's, bold or not, quoted or not): two header fields, one a line or two after the other
    re.compile(rf"^[ \t>]*\*?{_HEADER_FIELDS}\s*:\*?[ \t][^\n]*(?:\n[^\n]*)?\n[ \t>]*\*?{_HEADER_FIELDS}\s*:\*?[ \t]", re.MULTILINE),
]
_QUOTED = re.compile(r"^[ \t]*>")


@functools.lru_cache(maxsize=8)
def _reader(languages: tuple[str, ...]) -> Any:
    from mailparser_reply import EmailReplyParser
    from mailparser_reply.constants import MAIL_LANGUAGES
    from mailparser_reply.parser import EmailMessage

    for code, spec in EXTRA_LANGUAGES.items():
        MAIL_LANGUAGES.setdefault(code, spec)
    langs = EmailReplyParser(languages=list(languages)).languages
    template = EmailMessage(text="", languages=list(langs))
    patterns = {"_header_regex": template.HEADER_REGEX, "_disclaimers_regex": template.DISCLAIMERS_REGEX, "_signature_regex": template.SIGNATURE_REGEX}

    def read(text: str) -> Any:
        return EmailMessage(text=text, languages=list(langs), **patterns).read()

    return read


def supported_languages() -> list[str]:
    """The codes ``reply_languages`` accepts."""
    from mailparser_reply.constants import MAIL_LANGUAGES

    return sorted({*MAIL_LANGUAGES, *EXTRA_LANGUAGES} - {"david"})


def _cut_at_header(text: str) -> str | None:
    """The text above the first quote header found by shape (``None``: none found)."""
    first = None
    for pattern in _SHAPES:
        m = pattern.search(text)
        if m and (first is None or m.start() < first):
            first = m.start()
    return text[:first] if first is not None else None


def _bottom_posted(text: str) -> str | None:
    """The unquoted text after a quote, when the reply is written below it."""
    lines = text.splitlines()
    last_quoted = max((i for i, line in enumerate(lines) if _QUOTED.match(line)), default=None)
    if last_quoted is None:
        return None
    below = "\n".join(lines[last_quoted + 1 :]).strip()
    above = "\n".join(line for line in lines[:last_quoted] if not _QUOTED.match(line)).strip()
    if not below:
        return None
    # what is above the quote, if anything, must be only its header ("On ... wrote:")
    before_header = _cut_at_header(above + "\n") if above else ""
    if above and (before_header is None or before_header.strip()) and not above.rstrip().endswith(":"):
        return None  # text above and below: an interleaved reply, or a top-posted one: not this case
    return below


def split_reply(text: str, languages: tuple[str, ...]) -> str:
    """The sender's own text of ``text`` (all of it when nothing is quoted)."""
    bottom = _bottom_posted(text)
    if bottom is not None:
        text = bottom
    above = _cut_at_header(text)
    if above is not None and above.strip():
        text = above
    try:
        replies = _reader(languages)(text).replies
    except Exception:  # noqa: BLE001 - a reply parser failure keeps the full text
        return text.strip() or text
    own = replies[0].body if replies else text
    return own.strip() or text.strip() or text


__all__ = ["EXTRA_LANGUAGES", "split_reply", "supported_languages"]
