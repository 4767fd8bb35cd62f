"""Issue 21: `crmsync report` in a real headless Chromium (Debian's): it renders without a
console error or a network request, and its numbers are `crmsync status --json`'s."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync.cli import create_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")


def _cli(demo: Path, *args: str):
    res = CliRunner().invoke(create_cli(), ["-c", str(demo / "crmsync.toml"), *args])
    assert res.exit_code in (0, 1), res.output
    return res


def _open(html: Path):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
    page = browser.new_page()
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith("file://") else None)
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    return pw, browser, page, problems, requests


def test_the_report_renders_in_chromium_and_agrees_with_status(demo_dir, tmp_path):
    # a hostile title too: what people write must stay text
    reviews = demo_dir / "reviews" / "reviews.csv"
    reviews.write_text(reviews.read_text() + 'RV-XSS,2026-11-20 10:00:00,1,"<script>alert(1)</script><img src=x onerror=alert(2)>",Broken and nobody answers,Eve,eve@x.example,Acme Rocket,acme-shop\n')
    _cli(demo_dir, "run", "--no-progress")
    out = tmp_path / "report.html"
    res = _cli(demo_dir, "report", "--out", str(out))
    assert res.exit_code == 0 and out.exists(), res.output
    status = json.loads(_cli(demo_dir, "status", "--json").output)
    pw, browser, page, problems, requests = _open(out)
    try:
        assert problems == [] and requests == []
        # the hostile review is in it, as text: no element, no handler came of it
        assert page.locator("script").count() == 0 and page.locator("img").count() == 0
        html = out.read_text().lower()
        assert "<script" not in html and "onerror=" not in html
        text = lambda sel: page.locator(sel).inner_text().strip()  # noqa: E731
        assert int(text("#interactions-total")) == sum(status["interactions"].values())
        assert int(text("#identities")) == status["identities"]
        assert int(text("#overdue")) == status["response_queue"]["overdue"]
        assert int(text("#due-soon")) == status["response_queue"]["due_soon"]
        assert int(text("#quarantine-open")) == sum(status["quarantine_open"].values())
        for source, n in status["interactions"].items():
            assert int(page.locator(f'tr[data-source="{source}"] td.count').inner_text()) == n
        assert page.locator("tr.queue-item").count() == min(50, status["response_queue"]["overdue"] + status["response_queue"]["due_soon"])
        # the three charts are drawn (inline SVG, no script)
        for chart in ("sentiment_by_source", "sentiment_by_brand", "volume_by_term"):
            assert page.locator(f"#chart-{chart} svg").count() == 1, chart
        shot = page.screenshot(full_page=True)
        assert len(shot) > 10_000
    finally:
        browser.close()
        pw.stop()


def test_an_empty_store_still_gives_a_report(demo_dir, tmp_path):
    out = tmp_path / "empty.html"
    assert _cli(demo_dir, "report", "--out", str(out)).exit_code == 0
    pw, browser, page, problems, _requests = _open(out)
    try:
        assert problems == [] and page.locator("#interactions-total").inner_text() == "0"
        assert "Nothing waits for a response." in page.locator("#queue").inner_text()
    finally:
        browser.close()
        pw.stop()
