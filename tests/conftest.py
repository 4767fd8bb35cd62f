"""Shared fixtures: no installed third-party plugins, demo and corpus paths, PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"

# Installed third-party plugins must not change test results; tests that want
# one (the example plugin) set CRMSYNC_LOAD_PLUGINS themselves.
os.environ.setdefault("CRMSYNC_LOAD_PLUGINS", "")


@pytest.fixture(autouse=True)
def _fresh_plugin_host():
    from crmsync.host.plugins import reset_host

    reset_host()
    yield
    reset_host()


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    """A private copy of the bundled demo."""
    target = tmp_path / "demo"
    shutil.copytree(ROOT / "demo", target, ignore=shutil.ignore_patterns(".crmsync", "out"))
    return target


def crmsync_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "crmsync"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "crmsync"]


# PostgreSQL ------------------------------------------------------------------
def _pg_bin() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()])
    for c in reversed(candidates):
        if (c / "postgres").exists():
            return c
    found = shutil.which("postgres")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server (Debian's binaries), started and stopped here."""
    pgbin = _pg_bin()
    if pgbin is None:
        msg = "PostgreSQL server binaries not found (apt-get install postgresql; .ci/run does this)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg not installed (pip install -e '.[test]')")
    try:
        url, stop = start_postgres(pgbin)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield url
    stop()


def start_postgres(pgbin: Path) -> tuple[str, object]:
    """Start a throwaway PostgreSQL server: (its URL, a function that stops it).
    Used by the tests and the benchmarks."""
    tmp = Path(tempfile.mkdtemp(prefix="crmsync-pg-"))
    run_as: dict = {}
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
        run_as = {"user": "postgres", "group": "postgres"}
    data = tmp / "data"
    subprocess.run([str(pgbin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], check=True, capture_output=True, cwd=tmp, **run_as)
    port = _free_port()
    proc = subprocess.Popen(
        [str(pgbin / "postgres"), "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={tmp}", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
        stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"), cwd=tmp, **run_as,  # noqa: SIM115
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = subprocess.run([str(pgbin / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True)
        if r.returncode == 0:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("PostgreSQL did not start: " + (tmp / "server.log").read_text())

    def stop() -> None:
        proc.send_signal(2)  # SIGINT: fast shutdown
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop


@pytest.fixture
def pg_database(postgres_url: str):
    """A fresh database on the session's PostgreSQL server."""
    import uuid

    from sqlalchemy import create_engine, text

    name = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


# MariaDB ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def mariadb_url():
    """A throwaway MariaDB server (Debian's mariadb-server), started and stopped here;
    no grant tables: root connects without a password."""
    server = shutil.which("mariadbd") or ("/usr/sbin/mariadbd" if Path("/usr/sbin/mariadbd").exists() else None)
    install = shutil.which("mariadb-install-db")
    if server is None or install is None:
        msg = "MariaDB not installed (apt-get install mariadb-server; .ci/run does this)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    try:
        import pymysql  # noqa: F401
    except ImportError:
        pytest.skip("pymysql not installed (pip install -e '.[test]')")
    tmp = Path(tempfile.mkdtemp(prefix="crmsync-maria-"))
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run([install, "--no-defaults", f"--datadir={tmp / 'data'}", "--auth-root-authentication-method=normal", "--skip-test-db", *user], check=True, capture_output=True)
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--no-defaults", f"--datadir={tmp / 'data'}", f"--socket={tmp / 'sock'}", f"--port={port}", "--bind-address=127.0.0.1", "--skip-grant-tables",
         "--skip-name-resolve", f"--log-error={tmp / 'server.log'}", "--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=2", *user],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import pymysql

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            pymysql.connect(host="127.0.0.1", port=port, user="root").close()
            break
        except pymysql.err.OperationalError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("MariaDB did not start: " + (tmp / "server.log").read_text(errors="replace")[-2000:])
    yield f"mysql+pymysql://root@127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def maria_database(mariadb_url: str):
    """A fresh database on the session's MariaDB server."""
    import uuid

    import pymysql

    name = "t_" + uuid.uuid4().hex[:12]
    host, port = mariadb_url.rsplit("@", 1)[1].split(":")
    conn = pymysql.connect(host=host, port=int(port), user="root", autocommit=True)
    conn.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    conn.close()
    yield f"{mariadb_url}/{name}?charset=utf8mb4"
    conn = pymysql.connect(host=host, port=int(port), user="root", autocommit=True)
    conn.cursor().execute(f"DROP DATABASE {name}")
    conn.close()


# Dovecot (IMAP) --------------------------------------------------------------
DOVECOT_CONF = """
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
first_valid_uid = {uid}
mail_location = maildir:{d}/mail/%u
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
{extra}
"""


@pytest.fixture(scope="session")
def dovecot():
    """A real Dovecot IMAP server (Debian's dovecot-imapd) on loopback, with TLS and STARTTLS."""
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(binary).exists():
        msg = "Dovecot not installed (apt-get install dovecot-imapd; .ci/run does this)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    d = Path(tempfile.mkdtemp(prefix="crmsync-dovecot-"))
    os.chmod(d, 0o755)
    (d / "mail").mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    users = ["alice", "bob", "carol", "dave", "erin", "frank"]
    (d / "passwd").write_text("".join(f"{u}:{{PLAIN}}secret-{u}\n" for u in users))
    if os.geteuid() == 0:
        uid, gid, extra = 8, 8, ""
        shutil.chown(d / "mail", 8, 8)
    else:
        import grp
        import pwd

        uid, gid = os.getuid(), os.getgid()
        user, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
        extra = f"default_login_user = {user}\ndefault_internal_user = {user}\ndefault_internal_group = {group}\n"
    port, tls_port = _free_port(), _free_port()
    (d / "dovecot.conf").write_text(DOVECOT_CONF.format(d=d, uid=uid, gid=gid, port=port, tls_port=tls_port, extra=extra))
    proc = subprocess.Popen([binary, "-F", "-c", str(d / "dovecot.conf")], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(100).startswith(b"* OK"):
                    break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("Dovecot did not start: " + ((d / "dovecot.log").read_text() if (d / "dovecot.log").exists() else proc.stderr.read().decode()))
    free = list(users)
    yield types.SimpleNamespace(host="127.0.0.1", port=port, tls_port=tls_port, cafile=str(d / "cert.pem"), users=free, password=lambda u: f"secret-{u}", dir=d)
    import signal as _signal

    try:
        os.killpg(proc.pid, _signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, _signal.SIGKILL)
    shutil.rmtree(d, ignore_errors=True)
