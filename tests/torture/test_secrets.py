"""Secrets never leak: a run against a real IMAP server (Dovecot) with its password
in an environment variable, over a PostgreSQL store whose URL carries a password,
with debug logs on. Every log line, run report, CLI output, output file and row of
the store is searched for both secrets, after a failed login and a good one."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess

import pytest
from sqlalchemy import create_engine, inspect, text

from ..conftest import ROOT, crmsync_cmd

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

STORE_PASSWORD = "pg-Secr3t-0x7741"


def _append(dovecot, user: str, messages: list[bytes]) -> None:
    from imapclient import IMAPClient

    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False) as c:
        c.login(user, dovecot.password(user))
        for raw in messages:
            c.append("INBOX", raw)


def test_secrets_appear_nowhere(tmp_path, dovecot, pg_database):
    user = dovecot.users.pop()
    box = mailbox.mbox(ROOT / "demo" / "mail" / "support.mbox")
    _append(dovecot, user, [box.get_bytes(k) for k in box.keys()])
    store_url = pg_database.replace("postgres@", f"postgres:{STORE_PASSWORD}@", 1)  # trust auth ignores it; crmsync must not
    (tmp_path / "crmsync.toml").write_text(
        '[store]\nurl = "env:CRMSYNC_TEST_STORE"\n'
        f'[sources.support]\nplugin = "email"\nimap = {{ host = "{dovecot.host}", port = {dovecot.tls_port}, security = "tls", username = "{user}", password = "env:CRMSYNC_TEST_IMAP_PASSWORD", ca_file = "{dovecot.cafile}" }}\n'
        '[sinks.crm]\nplugin = "crm_csv"\nprofile = "hubspot"\noutput_dir = "out"\n'
    )
    outputs: list[str] = []

    def crmsync(*args: str, password: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "CRMSYNC_TEST_STORE": store_url, "CRMSYNC_TEST_IMAP_PASSWORD": password}
        res = subprocess.run([*crmsync_cmd(), "-c", str(tmp_path / "crmsync.toml"), "--log-level", "debug", "--log-format", "json", *args], capture_output=True, text=True, env=env, timeout=120)
        outputs.extend([res.stdout, res.stderr])
        return res

    wrong = "wrong-Pa55-0x9913"
    bad = crmsync("run", "--json", "--no-progress", password=wrong)
    report = json.loads(bad.stdout)
    assert bad.returncode == 1 and report["sources"][0]["status"] == "failed" and report["sources"][0]["errors"], report
    good = crmsync("run", "--json", "--no-progress", password=dovecot.password(user))
    report = json.loads(good.stdout)
    assert good.returncode == 0 and report["sources"][0]["new"] == 4 and report["sinks"][0]["delivered"] == 4, report
    for args in (["status", "--json"], ["validate"], ["quarantine", "list", "--json"], ["export"], ["run", "--dry-run", "--no-progress"]):
        res = crmsync(*args, password=dovecot.password(user))
        assert res.returncode == 0, res.stderr
    # the failed login was logged (as JSON lines), so the search below covers the logs
    assert any(line.startswith("{") and "support" in line for line in bad.stderr.splitlines()), bad.stderr
    files = [p.read_bytes().decode("utf-8", "replace") for p in (tmp_path / "out").iterdir()]
    engine = create_engine(pg_database)
    rows: list[str] = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            rows.extend(r[0] for r in conn.execute(text(f'SELECT t::text FROM "{table}" t')))
    engine.dispose()
    assert rows and files
    secrets = {"IMAP password": dovecot.password(user), "wrong IMAP password": wrong, "store password": STORE_PASSWORD}
    for label, secret in secrets.items():
        for where, texts in (("CLI output and logs", outputs), ("output files", files), ("the store", rows)):
            hits = [t for t in texts if secret in t]
            assert not hits, f"the {label} leaked into {where}: {hits[0][:300]!r}"
