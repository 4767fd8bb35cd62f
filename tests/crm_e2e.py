"""What the CRM sink tests share (test_hubspot, test_salesforce, test_tryton): a server
per test directory, the demo with more feeds, running `crmsync run`, reading the store back,
and killing a run while the CRM has applied a write it has not answered yet."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import ROOT, crmsync_cmd


class PerTest:
    """One server per test directory: the conformance kit calls ``config(tmp)`` more than
    once in a test, and each call must reach the same server."""

    def __init__(self, start: Callable[..., Any], stop: Callable[[Any], None]) -> None:
        self.start, self.stop = start, stop
        self.servers: dict[Path, Any] = {}

    def __call__(self, directory: Path, **kwargs: Any) -> Any:
        if directory not in self.servers:
            self.servers[directory] = self.start(directory, **kwargs)
        return self.servers[directory]

    def __getitem__(self, directory: Path) -> Any:
        return self.servers[directory]

    def stop_all(self) -> None:
        while self.servers:
            self.stop(self.servers.popitem()[1])


def closed_port_url(scheme: str = "http") -> str:
    """A loopback URL nothing listens on (a target that cannot be reached)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"{scheme}://127.0.0.1:{s.getsockname()[1]}"


def demo_copy(tmp: Path, posts: int = 0) -> Path:
    """A private copy of the demo, with ``posts`` more feed items (30 a feed, 7 authors)."""
    target = tmp / "demo"
    shutil.copytree(ROOT / "demo", target, ignore=shutil.ignore_patterns(".crmsync", "out"))
    for f in range(posts // 30):
        items = "".join(
            f"<item><title>Post {f}-{i}</title><link>https://bulk{f}.example/p/{i}</link><guid>https://bulk{f}.example/p/{i}</guid>"
            f"<author>writer{i % 7}@bulk.example (Writer {i % 7})</author><description>Body {f}-{i}</description></item>"
            for i in range(30)
        )
        (target / "feeds" / f"bulk-{f}.rss.xml").write_text(f'<rss version="2.0"><channel><title>Bulk {f}</title><link>https://bulk{f}.example/</link>{items}</channel></rss>')
    return target


def run_json(cfg: Path, *args: str, failpoints: str | None = None) -> tuple[int, dict | None]:
    """``crmsync run --json``: (exit code, report or None when it was killed)."""
    env = {k: v for k, v in os.environ.items() if k != "CRMSYNC_FAILPOINTS"}
    if failpoints:
        env["CRMSYNC_FAILPOINTS"] = failpoints
    res = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "run", "--json", "--no-progress", *args], capture_output=True, text=True, env=env, timeout=300)
    try:
        return res.returncode, json.loads(res.stdout)
    except ValueError:
        return res.returncode, None


def forget_json(cfg: Path, email: str) -> dict:
    """``crmsync forget --email EMAIL --yes --json``, which must succeed: its report."""
    res = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "forget", "--email", email, "--yes", "--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def export(cfg: Path) -> dict[str, dict]:
    """The store's interactions (with their versions), by interaction id."""
    out = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "export"], capture_output=True, text=True, check=True).stdout
    return {r["interaction_id"]: r for r in map(json.loads, out.splitlines())}


def quarantined(cfg: Path, source: str) -> list[dict]:
    out = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "quarantine", "list", "--source", source, "--json"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def kill_while_applied(cfg: Path, fake: Any, kind: str, nth: int) -> int:
    """Run crmsync and SIGKILL it once ``fake`` has applied its nth ``kind`` request and
    before it answers: the write happened, the sink never learns that it did."""
    proc = subprocess.Popen([*crmsync_cmd(), "-c", str(cfg), "run", "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def kill(key: str, n: int) -> None:
        if key == kind and n == nth:
            os.killpg(proc.pid, signal.SIGKILL)

    fake.after_apply = kill
    try:
        return proc.wait(timeout=120)
    finally:
        fake.after_apply = None


def finish(cfg: Path, attempts: int = 3) -> dict:
    """Run again until a run completes (after a kill); returns its report."""
    for _ in range(attempts):
        code, report = run_json(cfg)
        if code == 0:
            return report
    raise AssertionError(f"no run completed in {attempts} attempts: {report}")


__all__ = ["PerTest", "closed_port_url", "demo_copy", "export", "finish", "kill_while_applied", "quarantined", "run_json"]
