"""The examples/meltano project, run by a real Meltano from a fresh virtual environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def meltano(tmp_path_factory):
    home = tmp_path_factory.mktemp("meltano-venv")
    venv.create(home, with_pip=True)
    res = subprocess.run([str(home / "bin" / "pip"), "install", "-q", "meltano"], capture_output=True, text=True)
    if res.returncode != 0:
        msg = f"cannot install meltano from PyPI: {res.stderr[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return home / "bin" / "meltano"


def test_meltano_run_is_incremental(tmp_path, meltano):
    project = tmp_path / "examples" / "meltano"
    shutil.copytree(ROOT / "examples" / "meltano", project, ignore=shutil.ignore_patterns(".meltano", "*.jsonl"))
    shutil.copytree(ROOT / "demo", tmp_path / "demo", ignore=shutil.ignore_patterns(".crmsync", "out"))
    yml = project / "meltano.yml"
    yml.write_text(yml.read_text().replace("pip_url: -e ../..[singer]", f"pip_url: -e {ROOT}[singer]"))
    env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false", "CRMSYNC_LOAD_PLUGINS": ""}

    def m(*args: str) -> subprocess.CompletedProcess:
        res = subprocess.run([str(meltano), *args], cwd=project, env=env, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        return res

    m("install")
    m("run", "rss-to-jsonl")
    lines = (project / "output" / "interactions.jsonl").read_text().splitlines()
    assert len(lines) == 5 and len({json.loads(line)["interaction_id"] for line in lines}) == 5
    assert all(json.loads(line)["extra"]["detected_language"] for line in lines)
    m("run", "rss-to-jsonl")
    assert len((project / "output" / "interactions.jsonl").read_text().splitlines()) == 5  # incremental: nothing new
    state = m("state", "list").stdout + m("state", "list").stderr
    assert "tap-crmsync-rss-to-target-jsonl" in state
    schedules = m("schedule", "list", "--format", "json").stdout
    assert "listen-hourly" in schedules and "@hourly" in schedules
