"""A throwaway Tryton server on 127.0.0.1, for the demo and the tests.

``python -m crmsync_tryton.devserver`` installs ``trytond`` and
``trytond-party`` from PyPI into a virtual environment of their own (Tryton is
GPL and crmsync never imports it: it runs as a separate server), creates a
database with the party module over SQLite, and serves it until Ctrl-C. The
first start takes a minute (the install) and a few seconds (the database);
later ones reuse both and take about a second.

The cache lives in ``$CRMSYNC_TRYTON_HOME`` (default ``~/.cache/crmsync/tryton``).
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import gzip
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import venv
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REQUIREMENTS = ("trytond==8.2.*", "trytond-party==8.2.*")
ADMIN_PASSWORD = "crmsync-demo"  # a throwaway server on loopback: the demo's and the tests' only


def home() -> Path:
    return Path(os.environ.get("CRMSYNC_TRYTON_HOME") or Path.home() / ".cache" / "crmsync" / "tryton")


@contextmanager
def _locked(path: Path):  # noqa: ANN202 - several test workers share the cache
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_installed(root: Path | None = None) -> Path:
    """The ``bin`` directory of a venv with trytond and trytond-party (installed once)."""
    root = root or home()
    env_dir = root / "venv"
    with _locked(root / ".install.lock"):
        if not (env_dir / "bin" / "trytond").exists() or not (root / ".installed").exists():
            shutil.rmtree(env_dir, ignore_errors=True)
            venv.create(env_dir, with_pip=True)
            res = subprocess.run([str(env_dir / "bin" / "pip"), "install", "-q", *REQUIREMENTS], capture_output=True, text=True)
            if res.returncode != 0:
                msg = f"cannot install {' '.join(REQUIREMENTS)}: {res.stderr[-800:]}"
                raise RuntimeError(msg)
            (root / ".installed").write_text(" ".join(REQUIREMENTS))
    return env_dir / "bin"


def ensure_postgres_driver(root: Path | None = None) -> None:
    """trytond's PostgreSQL backend needs psycopg (3) in its environment (installed once)."""
    root = root or home()
    bindir = ensure_installed(root)
    with _locked(root / ".install.lock"):
        if not (root / ".psycopg-pool").exists():
            res = subprocess.run([str(bindir / "pip"), "install", "-q", "psycopg[binary]", "psycopg-pool"], capture_output=True, text=True)
            if res.returncode != 0:
                msg = f"cannot install psycopg[binary] for trytond: {res.stderr[-800:]}"
                raise RuntimeError(msg)
            (root / ".psycopg-pool").write_text("psycopg[binary] psycopg-pool")


def _initialise(bindir: Path, conf: Path, database: str, work: Path) -> None:
    (work / "pass").write_text(ADMIN_PASSWORD)
    res = subprocess.run(
        [str(bindir / "trytond-admin"), "-c", str(conf), "-d", database, "--all", "-u", "party", "--activate-dependencies", "--email", "admin@example.com"],
        env={**os.environ, "TRYTONPASSFILE": str(work / "pass")}, capture_output=True, text=True,
    )
    if res.returncode != 0:
        msg = f"trytond-admin failed: {res.stderr[-1500:]}"
        raise RuntimeError(msg)


def _config(directory: Path, port: int, uri: str = "sqlite://") -> Path:
    conf = directory / "trytond.conf"
    conf.write_text(f"[database]\nuri = {uri}\npath = {directory}\n\n[web]\nlisten = 127.0.0.1:{port}\n\n[session]\ntimeout = 86400\n")
    return conf


def template(root: Path | None = None) -> Path:
    """An initialised SQLite database (party module activated), made once and copied per server."""
    root = root or home()
    bindir = ensure_installed(root)
    target = root / "template.sqlite"
    with _locked(root / ".template.lock"):
        if not target.exists():
            work = Path(tempfile.mkdtemp(prefix="crmsync-tryton-init-"))
            try:
                (work / "crm.sqlite").touch()
                _initialise(bindir, _config(work, free_port()), "crm", work)
                _copy_sqlite(work / "crm.sqlite", root / ".template.tmp")
                os.replace(root / ".template.tmp", target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return target


def _copy_sqlite(src: Path, dst: Path) -> None:
    # the backup API, not a file copy: a -wal file may still hold the last pages
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TrytonServer:
    """A running trytond over a fresh copy of the template database."""

    database = "crm"
    username = "admin"
    password = ADMIN_PASSWORD

    def __init__(self, directory: Path | None = None, *, port: int | None = None, root: Path | None = None, postgres: str | None = None) -> None:
        """``postgres``: a server URL (``postgresql://user@host:port/``) whose (existing, empty)
        database ``crm`` is initialised on start; default: SQLite in ``directory``."""
        self.root = root or home()
        self.postgres = postgres
        self.dir = Path(directory or tempfile.mkdtemp(prefix="crmsync-tryton-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._auth: str | None = None

    def start(self, timeout: float = 60) -> TrytonServer:
        bindir = ensure_installed(self.root)
        if self.postgres:
            ensure_postgres_driver(self.root)
            conf = _config(self.dir, self.port, self.postgres)
            if not (self.dir / ".initialised").exists():
                _initialise(bindir, conf, self.database, self.dir)
                (self.dir / ".initialised").touch()
        else:
            db = self.dir / f"{self.database}.sqlite"
            if not db.exists():
                _copy_sqlite(template(self.root), db)
            conf = _config(self.dir, self.port)
        log = open(self.dir / "trytond.log", "wb")  # noqa: SIM115
        # -d preloads the database: without it every login fails (KeyError: 'res.user')
        self.proc = subprocess.Popen([str(bindir / "trytond"), "-c", str(conf), "-d", self.database], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                msg = f"trytond exited with {self.proc.returncode}: {(self.dir / 'trytond.log').read_text()[-1500:]}"
                raise RuntimeError(msg)
            try:
                self.login()
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.stop()
        msg = f"trytond did not answer within {timeout}s: {(self.dir / 'trytond.log').read_text()[-1500:]}"
        raise RuntimeError(msg)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> TrytonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # reading the CRM back (tests, the demo) ------------------------------------
    def _post(self, method: str, params: list[Any]) -> Any:
        headers = {"Content-Type": "application/json", "Accept-Encoding": "gzip", **({"Authorization": self._auth} if self._auth else {})}
        req = urllib.request.Request(f"{self.url}/{self.database}/rpc/", data=json.dumps({"id": 1, "method": method, "params": params}).encode(), headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
            data = json.loads(gzip.decompress(body) if resp.headers.get("Content-Encoding") == "gzip" else body)
        if data.get("error"):
            raise RuntimeError(f"{method}: {data['error']}")
        return data["result"]

    def login(self) -> None:
        uid, session = self._post("common.db.login", [self.username, {"password": self.password}, "en"])[:2]
        self._auth = "Session " + base64.b64encode(f"{self.username}:{uid}:{session}".encode()).decode()

    def rpc(self, model: str, method: str, *args: Any) -> Any:
        """``model.MODEL.METHOD(*args, context)`` as the admin user."""
        if self._auth is None:
            self.login()
        return self._post(f"model.{model}.{method}", [*args, {}])

    def notes(self) -> list[dict[str, Any]]:
        """Every note: id, resource (``party.party,ID``) and message."""
        return self.rpc("ir.note", "search_read", [], 0, None, [["id", "ASC"]], ["resource", "message"])

    def parties(self) -> list[dict[str, Any]]:
        """Every active party with its email addresses."""
        parties = self.rpc("party.party", "search_read", [], 0, None, [["id", "ASC"]], ["name"])
        mechs = self.rpc("party.contact_mechanism", "search_read", [["type", "=", "email"]], 0, None, [["id", "ASC"]], ["party", "value"])
        for p in parties:
            p["emails"] = [m["value"] for m in mechs if m["party"] == p["id"]]
        return parties


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crmsync_tryton.devserver", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000, help="Port on 127.0.0.1 (default 8000).")
    parser.add_argument("--dir", type=Path, help="Keep the database here (default: a new temporary directory each start).")
    args = parser.parse_args(argv)
    print(f"installing/initialising Tryton in {home()} (the first time takes a minute) ...", file=sys.stderr)
    server = TrytonServer(args.dir, port=args.port).start()
    print(f"Tryton is serving database {server.database!r} at {server.url} (user {server.username}, password {server.password}); Ctrl-C stops it", file=sys.stderr)
    try:
        assert server.proc is not None
        server.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
