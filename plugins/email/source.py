"""The ``email`` source: customer mail from IMAP, mbox, Maildir and .eml files.

IMAP access is read-only (``EXAMINE`` and ``BODY.PEEK[]``: flags never change,
nothing moves) and incremental by UIDVALIDITY + UID per folder.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crmsync

from .parse import MessageError, ParsedMessage, parse_message
from .replies import split_reply, supported_languages

PARSER_VERSION = "2"
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
ROLE_LOCALPARTS = ("noreply", "no-reply", "donotreply", "do-not-reply", "mailer-daemon", "postmaster", "bounce", "bounces")


def _maildir_entry(sub: str, name: str) -> str:
    """A Maildir file as one sortable string: its unique part (the name before the flags),
    its folder, its flags (":2,S" or nothing)."""
    key, colon, flags = name.partition(":")
    return f"{key}\0{sub}\0{colon}{flags}"


def _same_key(a: str, b: str) -> bool:
    return a[: a.index("\0")] == b[: b.index("\0")]


def mbox_messages(path: Path) -> Iterator[tuple[int, bytes]]:
    """Each message of an mbox file, with the offset of its "From " line, read a message at a time.

    Split exactly as the standard library's ``mailbox.mbox`` splits (every line starting
    with "From " starts a message; the blank line before it belongs to none), which first
    builds a table of every message's offsets: 160,000 entries at 1M interactions. Read-only:
    never takes the mbox lock. Bytes before the first "From " line belong to no message.
    """
    with open(path, "rb") as fh:
        start: int | None = None
        lines: list[bytes] = []
        last_was_empty = False
        pos = 0
        for line in fh:
            if line.startswith(b"From "):
                if start is not None:
                    yield start, _mbox_body(lines, last_was_empty)
                start, lines, last_was_empty = pos, [], False
            elif start is not None:
                lines.append(line)
                last_was_empty = line == b"\n"
            pos += len(line)
        if start is not None:
            yield start, _mbox_body(lines, last_was_empty)


def _mbox_body(lines: list[bytes], last_was_empty: bool) -> bytes:
    raw = b"".join(lines)
    return raw[:-1] if last_was_empty else raw


def _count_mbox(path: Path) -> int:
    """How many "From " lines an mbox has (for progress), in 1 MiB reads."""
    count, tail = 0, b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            count += (tail + chunk).count(b"\nFrom ")
            tail = chunk[-5:]
    return count


def _has_body_separator(raw: bytes) -> bool:
    """Whether the header block ends (a blank line), i.e. the message was not cut inside it."""
    return b"\n\n" in raw or b"\r\n\r\n" in raw


class EmailSource(crmsync.Source):
    """Customer mail: IMAP folders, mbox files, Maildir folders, .eml files."""

    name = "email"
    channel = "email"
    description = "Mail from IMAP (read-only), mbox, Maildir and .eml, threaded by Message-ID, replies separated from quotes."
    config_schema = {
        "type": "object",
        "properties": {
            "paths": {"type": "array", "items": {"type": "string"}, "default": [], "description": "mbox files, Maildir folders, .eml files or directories of .eml files."},
            "imap": {
                "type": "object",
                "properties": {
                    "host": {"type": "string"},
                    "port": {"type": "integer", "description": "Default 993 (tls) or 143 (starttls)."},
                    "security": {"type": "string", "enum": ["tls", "starttls"], "default": "tls", "description": "tls: implicit TLS; starttls: upgrade a plain connection."},
                    "username": {"type": "string"},
                    "password": {"type": "string", "secret": True, "description": "env:NAME or file:PATH"},
                    "folders": {"type": "array", "items": {"type": "string"}, "default": ["INBOX"]},
                    "ca_file": {"type": "string", "description": "CA bundle for a server with a private/self-signed certificate."},
                    "verify": {"type": "boolean", "default": True, "description": "Verify the server certificate (leave on)."},
                    "batch_size": {"type": "integer", "minimum": 1, "default": 200, "description": "Messages per FETCH."},
                    "timeout": {"type": "number", "default": 60},
                    "on_delete": {"type": "string", "enum": ["keep", "propagate"], "default": "keep", "description": "A message expunged from a folder (deleted, or moved to a folder not read here): keep it, or propagate: mark it deleted and have the sinks delete it."},
                },
                "required": ["host", "username", "password"],
                "additionalProperties": False,
                "description": "An IMAP account (read-only).",
            },
            "own_domains": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Skip mail sent from these domains (the company's own)."},
            "skip_role_senders": {"type": "boolean", "default": True, "description": "Skip mail from noreply@, mailer-daemon@ and similar."},
            "skip_automatic": {"type": "boolean", "default": True, "description": "Skip auto-replies and bounces (Auto-Submitted, Precedence, delivery-status reports)."},
            "separate_replies": {"type": "boolean", "default": True, "description": "body_text is the new text of a reply (quotes and signature removed); the full text stays in extra.full_text."},
            "reply_languages": {"type": "array", "items": {"type": "string"}, "default": ["en", "de", "fr", "es"], "description": "Languages of reply headers and signatures to recognize (each adds parsing time): en, de, fr, es, it, nl, pl, sv, da, cs, ja, ko, zh (mail-parser-reply), ru, pt (crmsync)."},
            "max_bytes": {"type": "integer", "minimum": 1, "default": MAX_MESSAGE_BYTES, "description": "Quarantine messages larger than this."},
            "max_part_bytes": {"type": "integer", "minimum": 1, "default": 10 * 1024 * 1024, "description": "Cut text parts larger than this."},
        },
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.config["paths"] and not self.config.get("imap"):
            msg = "configure 'paths' (mbox, Maildir, .eml) or 'imap'"
            raise crmsync.ConfigError(msg, plugin=self.instance)
        self.skipped: dict[str, int] = {}

    # local stores ---------------------------------------------------------
    def preflight(self) -> list[str]:
        self._check_languages()
        if not self.config["paths"]:
            return []
        try:
            stores = self._stores()
        except crmsync.FatalError as exc:
            msg = f"key 'paths': {exc.message}"
            raise crmsync.ConfigError(msg, plugin=self.instance) from None
        return [f"{len(stores)} mailbox(es) or message file(s)"]

    def _check_languages(self) -> None:
        if not self.config["separate_replies"]:
            return
        known = supported_languages()
        unknown = [code for code in self.config["reply_languages"] if code not in known]
        if unknown:
            msg = f"key 'reply_languages': no reply patterns for {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
            raise crmsync.ConfigError(msg, plugin=self.instance)

    def _stores(self) -> list[tuple[str, Path]]:
        out = []
        for entry in self.config["paths"]:
            p = self.resolve_path(entry)
            if p.is_dir():
                # a Maildir (cur/ or new/ is enough), its Maildir++ sub-folders (.Sent, .INBOX.x),
                # Maildirs anywhere below, and .eml files: a folder tree as mail clients keep it
                # One walk that does not go into a Maildir's cur/, new/ and tmp/ (their messages
                # are read as the Maildir's): 120,000 messages were 120,000 Paths and stats here.
                maildirs, emls = [], []
                for folder, subs, files in os.walk(p):
                    if "cur" in subs or "new" in subs:
                        maildirs.append(Path(folder))
                        subs[:] = [s for s in subs if s not in ("cur", "new", "tmp")]
                    emls.extend(Path(folder, f) for f in files if f.endswith(".eml"))
                out.extend(("maildir", d) for d in sorted(maildirs))
                out.extend(("eml", f) for f in sorted(emls))
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
                if not (path / sub).is_dir():
                    continue
                folder = str(path / sub)
                for name in sorted(os.listdir(folder)):  # names, not Paths: 120,000 of them at 1M
                    h.update(f"{name.split(':', 1)[0]}:{os.stat(os.path.join(folder, name)).st_size}\n".encode())
            return h.hexdigest()
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"

    def read(self, state: dict[str, Any] | None) -> Iterator[crmsync.Record]:
        self._check_languages()
        state = state or {}
        out: dict[str, Any] = {"stores": dict(state.get("stores", {})), "imap": {k: dict(v) for k, v in state.get("imap", {}).items()}}
        held = out["held"] = dict(state.get("held", {}))  # mbox files whose last message was cut: signature
        for kind, path in self._stores():
            key = str(path)
            mark = self.state_key(path)  # survives moving the project
            sig = self._signature(kind, path)
            if out["stores"].get(mark, out["stores"].get(key)) == sig:
                continue
            cut: list[str] = []
            yield from self.guard(key, None, self._store(kind, path, cut, unchanged=held.get(mark) == sig))
            if cut:
                # not a record from half a message: the file is read again next run (its writer may be
                # at it still); if it has not changed by then, the message goes to the quarantine
                self.note(f"{cut[0]}: held back until the file is complete")
                held[mark] = sig
                yield crmsync.Checkpoint(out)
                continue
            held.pop(mark, None)
            out["stores"].pop(key, None)  # a 0.1 bookmark's absolute name
            out["stores"][mark] = sig
            yield crmsync.Checkpoint(out)
        if self.config.get("imap"):
            yield from self._imap(out)
        if self.skipped:
            self.note("skipped " + ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())))

    def _store(self, kind: str, path: Path, cut: list[str], *, unchanged: bool = False) -> Iterator[crmsync.Record]:
        if kind == "mbox":
            with open(path, "rb") as fh:
                head = fh.read(5)
                fh.seek(max(0, path.stat().st_size - 1))
                last = fh.read(1)
            if head and head != b"From ":
                yield self.reject(str(path), "not an mbox file: it does not start with a 'From ' line (a binary file, or mail in another format?)", path.read_bytes()[:65536])
                return
        previous: tuple[str, bytes] | None = None
        for message in self._messages(kind, path):  # one behind: the last one of an mbox is checked first
            if previous is not None:
                yield from self.guard(previous[0], previous[1], self._parse(*previous))
            previous = message
        if previous is None:
            return
        ref, raw = previous
        if kind == "mbox" and (last != b"\n" or not _has_body_separator(raw)):
            why = f"{ref}: the mbox ends inside this message"
            if not unchanged:
                cut.append(why)
                return
            yield self.reject(ref, f"{why}, and the file has not changed since the last run: half a message is not read", raw)
            return
        yield from self.guard(ref, raw, self._parse(ref, raw))

    def _messages(self, kind: str, path: Path) -> Iterator[tuple[str, bytes]]:
        if kind == "eml":
            yield str(path), path.read_bytes()
        elif kind == "maildir":
            # cur/ and new/ read directly: mailbox.Maildir refuses a folder that lacks one of them.
            # One "key NUL sub NUL flags" string a message, sorted as they are (a Path a message
            # and a sort by a key function held 83 MB at 120,000 messages, these 18 MB): in key
            # order, and a message in both cur/ and new/ (moved meanwhile) is read once, from cur/.
            entries = [_maildir_entry(sub, e.name) for sub in ("cur", "new") if (path / sub).is_dir() for e in os.scandir(path / sub) if not e.name.startswith(".") and e.is_file()]
            entries.sort()
            entries = [e for i, e in enumerate(entries) if not i or not _same_key(entries[i - 1], e)]
            self.expect((self.expected or 0) + len(entries))
            for entry in entries:
                key, sub, flags = entry.split("\0")
                try:
                    data = (path / sub / (key + flags)).read_bytes()
                except FileNotFoundError:
                    continue  # moved from new/ to cur/ (or expunged) meanwhile by the mail client
                yield f"{path}:{key}", data
        else:
            self.expect((self.expected or 0) + _count_mbox(path))
            for offset, raw in mbox_messages(path):
                yield f"{path}:offset {offset}", raw

    # IMAP -------------------------------------------------------------------
    def _imap(self, out: dict[str, Any]) -> Iterator[crmsync.Record]:
        from imapclient import IMAPClient
        from imapclient.exceptions import IMAPClientError

        cfg = self.config["imap"]
        security = cfg["security"]
        port = cfg.get("port") or (993 if security == "tls" else 143)
        context = ssl.create_default_context(cafile=str(self.resolve_path(cfg["ca_file"])) if cfg.get("ca_file") else None)
        if not cfg["verify"]:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        where = f"imap://{cfg['username']}@{cfg['host']}:{port}"
        try:
            client = IMAPClient(cfg["host"], port=port, ssl=security == "tls", ssl_context=context, timeout=cfg["timeout"])
            if security == "starttls":
                client.starttls(context)
            client.login(cfg["username"], cfg["password"].get())
        except ssl.SSLError as exc:
            msg = f"{where}: TLS error: {exc}"
            raise crmsync.FatalError(msg, plugin=self.instance) from None
        except (OSError, socket.timeout) as exc:
            msg = f"{where}: cannot connect: {exc}"
            raise crmsync.RetriableError(msg, plugin=self.instance) from None
        except IMAPClientError as exc:
            msg = f"{where}: login failed: {exc}"
            raise crmsync.FatalError(msg, plugin=self.instance) from None
        try:
            for folder in cfg["folders"]:
                yield from self._folder(client, folder, out, where)
        except (OSError, socket.timeout, IMAPClientError) as exc:
            # the runner reconnects and resumes from the last committed UID
            msg = f"{where}: connection lost: {type(exc).__name__}: {exc}"
            raise crmsync.RetriableError(msg, plugin=self.instance) from None
        finally:
            try:
                client.logout()
            except Exception:  # noqa: BLE001 - the connection may already be gone
                pass

    def _folder(self, client: Any, folder: str, out: dict[str, Any], where: str) -> Iterator[crmsync.Record]:
        info = client.select_folder(folder, readonly=True)  # EXAMINE: nothing changes on the server
        validity = int(info[b"UIDVALIDITY"])
        key = f"{where}/{folder}"
        st = out["imap"].setdefault(key, {})
        if st.get("uidvalidity") != validity:
            if "uidvalidity" in st:
                self.note(f"{key}: UIDVALIDITY changed ({st['uidvalidity']} -> {validity}); re-scanning the folder (Message-ID based ids keep it duplicate-free)")
            st.clear()
            st["uidvalidity"] = validity
            st["last_uid"] = 0
        last = int(st.get("last_uid", 0))
        propagate = self.config["imap"]["on_delete"] == "propagate"
        known: dict[str, str] = st.setdefault("ids", {}) if propagate else {}
        if known:
            # expunged since the last run (same UIDVALIDITY: the UIDs still mean the same messages)
            present = {str(u) for u in client.search(["ALL"])}
            for uid in sorted((u for u in known if u not in present), key=int):
                yield crmsync.Takedown(known.pop(uid), f"expunged from {key}")
        uids = sorted(u for u in client.search(["UID", f"{last + 1}:*"]) if u > last)
        self.expect((self.expected or 0) + len(uids))
        size = self.config["imap"]["batch_size"]
        for i in range(0, len(uids), size):
            chunk = uids[i : i + size]
            data = client.fetch(chunk, ["BODY.PEEK[]"])
            for uid in chunk:
                raw = data.get(uid, {}).get(b"BODY[]")
                if raw is None:
                    continue  # expunged meanwhile
                ref = f"{key}:UID {uid}"
                for rec in self.guard(ref, raw, self._parse(ref, raw)):
                    if propagate and isinstance(rec, crmsync.Interaction):
                        known[str(uid)] = rec.interaction_id
                    yield rec
            st["last_uid"] = chunk[-1]
            yield crmsync.Checkpoint(out)

    def replay(self, ref: str, raw: bytes) -> Iterator[crmsync.Record]:
        yield from self.guard(ref, raw, self._parse(ref, raw))

    # normalizing -------------------------------------------------------------
    def _skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def _parse(self, ref: str, raw: bytes) -> Iterator[crmsync.Record]:
        if len(raw) > self.config["max_bytes"]:
            yield self.reject(ref, f"message is {len(raw)} bytes, over the {self.config['max_bytes']} byte limit", raw[:65536])
            return
        try:
            m = parse_message(raw, max_part_bytes=self.config["max_part_bytes"])
        except MessageError as exc:
            yield self.reject(ref, f"malformed message: {exc}", raw)
            return
        except Exception as exc:  # noqa: BLE001 - whatever the MIME parser raises on one message quarantines it
            yield self.reject(ref, f"malformed message: {crmsync.describe_failure(exc)}", raw, error_type=type(exc).__name__)
            return
        local, _, domain = (m.from_addr or "").lower().rpartition("@")
        if domain in {d.lower() for d in self.config["own_domains"]}:
            self._skip("from own domains")
            return
        if self.config["skip_role_senders"] and local.split("+", 1)[0] in ROLE_LOCALPARTS:
            self._skip("from role addresses")
            return
        if self.config["skip_automatic"] and m.auto:
            self._skip("auto-replies/bounces")
            return
        if m.truncated_parts:
            self.note(f"{ref}: {m.truncated_parts} text part(s) cut at {self.config['max_part_bytes']} bytes")
        yield self._interaction(ref, raw, m)

    def _split_reply(self, text: str) -> str:
        return split_reply(text, tuple(self.config["reply_languages"]))

    def _interaction(self, ref: str, raw: bytes, m: ParsedMessage) -> crmsync.Interaction:
        native, scope = m.message_id, None
        if native is None:
            # no Message-ID: identical bytes in any store still get one id
            native, scope = "sha256:" + hashlib.sha256(raw).hexdigest(), "no-message-id"
        parent = m.in_reply_to or (m.references[-1] if m.references else None)
        root = m.references[0] if m.references else (parent or native)
        full = crmsync.normalize_text(m.text) if m.text else (crmsync.html_to_text(m.html) if m.html else None)
        own = self._split_reply(full) if (full and self.config["separate_replies"]) else full
        extra: dict[str, Any] = {}
        if own != full:
            extra["full_text"] = full
        # Reply-To names the author too, unless a mailing list or a role address set it
        personal_reply_to = (
            m.reply_to
            and m.reply_to.lower() != (m.from_addr or "").lower()
            and not m.list_id
            and m.reply_to.lower().split("@", 1)[0] not in ROLE_LOCALPARTS
        )
        if m.reply_to and m.reply_to != m.from_addr:
            extra["reply_to"] = m.reply_to
        if m.from_raw:
            extra["from_raw"] = m.from_raw  # read leniently: the header as written
        emails = [m.from_addr] + ([m.reply_to] if personal_reply_to else [])
        return self.interaction(
            native_id=native,
            scope=scope,
            kind="reply" if parent else "email",
            title=m.subject,
            body_text=own,
            body_html=m.html,
            published=m.date,
            author=crmsync.Identity(name=m.from_name, emails=emails, verified_emails=[m.from_addr] if m.dmarc_pass else []),
            recipients=m.recipients,
            in_reply_to=crmsync.make_interaction_id("email", parent) if parent else None,
            thread_id=crmsync.make_interaction_id("email", root, scope),
            attachments=[crmsync.Attachment(filename=a.filename, media_type=a.media_type, size=a.size, sha256=a.sha256) for a in m.attachments],
            extra=extra,
            provenance=crmsync.Provenance(source_url=ref.rsplit(":", 1)[0], record_ref=ref, raw_hash=hashlib.sha256(raw).hexdigest(), parser="crmsync_email/compat32", parser_version=PARSER_VERSION),
        )
