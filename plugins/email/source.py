"""The ``email`` source: RFC 5322 mail from mbox, Maildir and .eml files."""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import mailbox
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import crmsync

PARSER_VERSION = "1"
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
_MSGID = re.compile(r"<[^<>\s]+>")


class EmailSource(crmsync.Source):
    """Customer mail from mbox files, Maildir folders and (directories of) .eml files."""

    name = "email"
    channel = "email"
    description = "Mail from mbox files, Maildir folders and .eml files, threaded by Message-ID."
    config_schema = {
        "type": "object",
        "properties": {
            "paths": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "mbox files, Maildir folders, .eml files or directories of .eml files."},
            "own_domains": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Skip mail sent from these domains (the company's own)."},
            "max_bytes": {"type": "integer", "minimum": 1, "default": MAX_MESSAGE_BYTES, "description": "Quarantine messages larger than this."},
        },
        "required": ["paths"],
    }

    def _stores(self) -> list[tuple[str, Path]]:
        out = []
        for entry in self.config["paths"]:
            p = self.resolve_path(entry)
            if p.is_dir() and (p / "cur").is_dir() and (p / "new").is_dir():
                out.append(("maildir", p))
            elif p.is_dir():
                out.extend(("eml", f) for f in sorted(p.rglob("*.eml")))
            elif p.is_file():
                out.append(("eml" if p.suffix.lower() == ".eml" else "mbox", p))
            else:
                msg = f"mail path {p} does not exist"
                raise crmsync.FatalError(msg, plugin=self.instance)
        return out

    @staticmethod
    def _signature(kind: str, path: Path) -> str:
        if kind == "maildir":
            h = hashlib.sha256()
            for sub in ("cur", "new"):
                for f in sorted((path / sub).iterdir()):
                    st = f.stat()
                    h.update(f"{f.name}:{st.st_size}\n".encode())
            return h.hexdigest()
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"

    def read(self, state: dict[str, Any] | None) -> Iterator[crmsync.Record]:
        seen: dict[str, str] = dict((state or {}).get("stores", {}))
        for kind, path in self._stores():
            key = str(path)
            sig = self._signature(kind, path)
            if seen.get(key) == sig:
                continue
            for ref, raw in self._messages(kind, path):
                yield from self._parse(ref, raw)
            seen[key] = sig
            yield crmsync.Checkpoint({"stores": dict(seen)})

    def _messages(self, kind: str, path: Path) -> Iterator[tuple[str, bytes]]:
        if kind == "eml":
            yield str(path), path.read_bytes()
        elif kind == "maildir":
            box = mailbox.Maildir(path, factory=None, create=False)
            for key in sorted(box.keys()):
                with box.get_file(key) as fh:
                    yield f"{path}:{key}", fh.read()
        else:
            box = mailbox.mbox(path, factory=None, create=False)
            for n, key in enumerate(box.keys(), 1):
                yield f"{path}:message {n}", box.get_bytes(key)

    def replay(self, ref: str, raw: bytes) -> Iterator[crmsync.Record]:
        yield from self._parse(ref, raw)

    def _parse(self, ref: str, raw: bytes) -> Iterator[crmsync.Record]:
        if len(raw) > self.config["max_bytes"]:
            yield self.reject(ref, f"message is {len(raw)} bytes, over the {self.config['max_bytes']} byte limit", raw[:65536])
            return
        try:
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            rec = self._interaction(ref, raw, msg)
        except (ValueError, TypeError, LookupError, IndexError) as exc:
            yield self.reject(ref, f"malformed message: {type(exc).__name__}: {exc}", raw)
            return
        if rec is not None:
            yield rec

    def _interaction(self, ref: str, raw: bytes, msg: EmailMessage) -> crmsync.Interaction | crmsync.Rejected | None:
        from_header = str(msg.get("From", "") or "")
        if not from_header.strip():
            return self.reject(ref, "message has no From header", raw)
        pairs = _getaddresses(from_header)
        name, addr = pairs[0] if pairs else ("", "")
        if not addr or "@" not in addr:
            return self.reject(ref, f"From header has no valid address: {from_header[:200]!r}", raw)
        domain = addr.rsplit("@", 1)[1].lower()
        if domain in {d.lower() for d in self.config["own_domains"]}:
            return None
        ids = _MSGID.findall(str(msg.get("Message-ID", "") or ""))
        native = ids[0] if ids else None
        scope = None
        if native is None:
            # no Message-ID: identical bytes in any store still get one id
            native = "sha256:" + hashlib.sha256(raw).hexdigest()
            scope = "no-message-id"
        parents = _MSGID.findall(str(msg.get("In-Reply-To", "") or ""))
        refs = _MSGID.findall(str(msg.get("References", "") or ""))
        parent = parents[-1] if parents else (refs[-1] if refs else None)
        root = refs[0] if refs else parent
        text, html_body, attachments = _bodies(msg)
        date = None
        if msg.get("Date"):
            try:
                date = email.utils.parsedate_to_datetime(str(msg["Date"]))
            except (TypeError, ValueError):
                date = None
        recipients = [a for _, a in email.utils.getaddresses([str(msg.get("To", "") or ""), str(msg.get("Cc", "") or "")]) if a]
        return self.interaction(
            native_id=native,
            scope=scope,
            kind="reply" if parent else "email",
            title=str(msg.get("Subject", "") or "") or None,
            body_text=text,
            body_html=html_body,
            published=date,
            author=crmsync.Identity(name=name or None, emails=[addr]),
            recipients=recipients,
            in_reply_to=crmsync.make_interaction_id("email", parent) if parent else None,
            thread_id=crmsync.make_interaction_id("email", root or native, scope),
            attachments=attachments,
            provenance=crmsync.Provenance(source_url=ref.rsplit(":", 1)[0], record_ref=ref, raw_hash=hashlib.sha256(raw).hexdigest(), parser="crmsync_email", parser_version=PARSER_VERSION),
        )


def _getaddresses(value: str) -> list[tuple[str, str]]:
    """email.utils.getaddresses in strict mode where this Python has it (3.11.10+, 3.12.5+)."""
    try:
        return email.utils.getaddresses([value], strict=True)
    except TypeError:
        return email.utils.getaddresses([value])


def _bodies(msg: EmailMessage) -> tuple[str | None, str | None, list[crmsync.Attachment]]:
    text = html_body = None
    attachments = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        ctype = part.get_content_type()
        if disposition == "attachment" or (part.get_filename() and ctype not in ("text/plain", "text/html")):
            payload = part.get_payload(decode=True) or b""
            attachments.append(crmsync.Attachment(filename=part.get_filename(), media_type=ctype, size=len(payload), sha256=hashlib.sha256(payload).hexdigest()))
            continue
        if ctype not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        try:
            content = payload.decode(charset, errors="replace")
        except LookupError:
            content = payload.decode("utf-8", errors="replace")
        if ctype == "text/plain" and text is None:
            text = content
        elif ctype == "text/html" and html_body is None:
            html_body = content
    if text is None and html_body is not None:
        text = crmsync.html_to_text(html_body)
    return (crmsync.normalize_text(text) if text else None), html_body, attachments
