#!/usr/bin/env python3
"""Reply separation against a public set of reply fixtures: mailgun/talon's tests.

talon (github.com/mailgun/talon) is a reply-parsing library; its test suite holds
messages with the reply text they should give: inline cases in
``tests/text_quotations_test.py`` (``msg_body = "..."`` then
``eq_("expected", quotations.extract_from_plain(msg_body))``, read here with ``ast``
without running talon) and the ``tests/fixtures/standard_replies/*.eml`` messages of
common mail clients (the reply is "Hello" unless a ``*_reply_text`` file says
otherwise). Nothing is copied into this repository.

For each case, crmsync's email source separates the reply (``body_text``) with the
languages the cases are written in configured, and the result is compared with the
expected text, whitespace-normalized: exact matches are reported, and the misses
listed.

    python bench/bench_reply.py --talon PATH   # a checkout or bare clone

Writes bench/results/reply.{json,md}.
"""

from __future__ import annotations

import argparse
import ast
import email
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "sv", "da", "cs", "ru", "ja", "ko", "zh"]


def _read(repo: Path, path: str) -> bytes:
    if (repo / path).exists():
        return (repo / path).read_bytes()
    return subprocess.run(["git", "--git-dir", str(repo), "show", f"HEAD:{path}"], capture_output=True, check=True).stdout


def _list(repo: Path, folder: str) -> list[str]:
    if (repo / folder).is_dir():
        return sorted(str(p.relative_to(repo)) for p in (repo / folder).iterdir())
    out = subprocess.run(["git", "--git-dir", str(repo), "ls-tree", "--name-only", f"HEAD:{folder}"], capture_output=True, check=True, text=True).stdout
    return [f"{folder}/{name}" for name in out.split()]


def inline_cases(source: str) -> list[dict[str, str]]:
    """(name, message, expected) of each eq_(CONSTANT, quotations.extract_from_plain(msg_body))."""
    cases = []
    for fn in ast.parse(source).body:
        if not isinstance(fn, ast.FunctionDef) or fn.decorator_list:
            continue  # decorated tests patch talon's settings: not comparable
        body: str | None = None
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "msg_body" for t in node.targets):
                body = node.value.value if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str) else None
            if (
                isinstance(node, ast.Call) and getattr(node.func, "id", "") == "eq_" and len(node.args) >= 2
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                and isinstance(node.args[1], ast.Call) and getattr(node.args[1].func, "attr", "") == "extract_from_plain"
                and isinstance(node.args[1].args[0], ast.Name) and node.args[1].args[0].id == "msg_body" and body is not None
            ):
                cases.append({"name": f"{fn.name}#{len([c for c in cases if c['name'].startswith(fn.name + '#')])}", "message": body, "expected": node.args[0].value})
    return cases


def eml_cases(repo: Path) -> list[dict[str, str]]:
    folder = "tests/fixtures/standard_replies"
    names = _list(repo, folder)
    cases = []
    for name in names:
        if not name.endswith(".eml"):
            continue
        msg = email.message_from_bytes(_read(repo, name))
        part = next((p for p in msg.walk() if p.get_content_type() == "text/plain"), None)
        if part is None:
            continue
        text = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8", "replace")
        expected_file = name[:-4] + "_reply_text"
        expected = _read(repo, expected_file).decode().strip() if expected_file in names else "Hello"
        cases.append({"name": Path(name).name, "message": text, "expected": expected})
    return cases


def separate(text: str) -> str:
    from crmsync_email.replies import split_reply

    return split_reply(text, tuple(LANGUAGES))


def norm(text: str) -> str:
    return " ".join(text.split())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--talon", type=Path, required=True, help="a checkout or bare clone of github.com/mailgun/talon")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    cases = inline_cases(_read(args.talon, "tests/text_quotations_test.py").decode()) + eml_cases(args.talon)
    results: list[dict[str, Any]] = []
    for case in cases:
        got = separate(case["message"])
        results.append({**case, "got": got, "match": norm(got) == norm(case["expected"])})
    matched = sum(r["match"] for r in results)
    summary = {"cases": len(results), "exact": matched, "agreement": round(matched / len(results), 4), "languages": LANGUAGES}
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "reply.json").write_text(json.dumps({**summary, "misses": [{k: r[k] for k in ("name", "expected", "got")} for r in results if not r["match"]]}, indent=2, ensure_ascii=False) + "\n")
    lines = ["# Reply separation on talon's fixtures", "", f"{summary['cases']} cases; the reply crmsync separates matches the expected text exactly (whitespace aside) in {matched} ({summary['agreement']:.1%})."]
    lines += ["", "Misses:", ""] + [f"- {r['name']}: expected {norm(r['expected'])[:60]!r}, got {norm(r['got'])[:60]!r}" for r in results if not r["match"]]
    (out / "reply.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
