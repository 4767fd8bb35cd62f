"""validate catches what run would fail on, before anything is read; run exits 2 on
the same problems (issue: operators' controls)."""

from __future__ import annotations

import importlib.metadata
import types

import pytest
from click.testing import CliRunner

import crmsync
from crmsync.cli import create_cli
from crmsync.host.config import load_config
from crmsync.host.plugins import PluginHost


def _cli(cfg, *args):
    return CliRunner().invoke(create_cli(), ["-c", str(cfg), *args])


def test_missing_inputs_are_named_by_validate_and_stop_run_before_reading(tmp_path):
    cfg = tmp_path / "crmsync.toml"
    cfg.write_text('[sources.blogs]\nplugin = "rss"\nfeeds = ["feeds/"]\n[sources.mail]\nplugin = "email"\npaths = ["inbox.mbox"]\n'
                   '[sources.reviews]\nplugin = "reviews"\nfiles = ["reviews.csv"]\n[sources.crm]\nplugin = "crm_csv"\nfile = "contacts.csv"\n')
    r = _cli(cfg, "validate", "--offline")
    assert r.exit_code == 2, r.output
    for expected in ("[sources.blogs]: key 'feeds': feed path", "[sources.mail]: key 'paths': mail path", "[sources.reviews]: key 'files': review input", "[sources.crm]: key 'file': contacts export"):
        assert expected in r.output
    r = _cli(cfg, "run")
    assert r.exit_code == 2 and "4 problems" in r.output
    assert not (tmp_path / ".crmsync").exists(), "nothing was written: not even the store"
    # only the selected sources are checked
    (tmp_path / "contacts.csv").write_text("contact_id,email\nC1,a@example.org\n")
    r = _cli(cfg, "run", "--source", "crm")
    assert r.exit_code == 0, r.output


def test_a_wrong_sink_column_is_a_config_error_not_a_crash(tmp_path):
    cfg = tmp_path / "crmsync.toml"
    (tmp_path / "contacts.csv").write_text("contact_id,email\nC1,a@example.org\n")
    cfg.write_text('[sources.crm]\nplugin = "crm_csv"\nfile = "contacts.csv"\n[sinks.out]\nplugin = "crm_csv"\noutput_dir = "out"\n'
                   '[sinks.out.columns.interactions]\nBody = "bodyy_text"\n')
    r = _cli(cfg, "validate", "--offline")
    assert r.exit_code == 2 and "key 'columns.interactions.Body': unknown field 'bodyy_text'" in r.output
    r = _cli(cfg, "run")
    assert r.exit_code == 2 and "AttributeError" not in r.output


def test_an_empty_config_is_an_error(tmp_path):
    cfg = tmp_path / "crmsync.toml"
    cfg.write_text("# nothing yet\n")
    for args in (("validate",), ("run",)):
        r = _cli(cfg, *args)
        assert r.exit_code == 2 and "nothing to run" in r.output


@pytest.mark.parametrize("text", ['enabled = "false"', "enabled = 0"])
def test_enabled_must_be_a_boolean(tmp_path, text):
    cfg = tmp_path / "crmsync.toml"
    (tmp_path / "f.xml").write_text("<rss/>")
    cfg.write_text(f'[sources.blogs]\nplugin = "rss"\nfeeds = ["f.xml"]\n{text}\n')
    r = _cli(cfg, "validate")
    assert r.exit_code == 2 and "key 'enabled' must be true or false (without quotes)" in r.output


@pytest.mark.parametrize("url, expected", [
    ("nonsense", "is not a SQLAlchemy URL"),
    ("postgres://crm:secret@127.0.0.1/crm", "PostgreSQL is postgresql+psycopg://"),
    ("oracle+oracledb://crm@127.0.0.1/crm", "needs the database driver"),
])
def test_a_store_url_that_cannot_work_exits_2_without_a_traceback(tmp_path, url, expected):
    cfg = tmp_path / "crmsync.toml"
    (tmp_path / "f.xml").write_text("<rss/>")
    cfg.write_text('[sources.blogs]\nplugin = "rss"\nfeeds = ["f.xml"]\n')
    for args in (("validate", "--offline"), ("run",)):
        r = CliRunner().invoke(create_cli(), ["-c", str(cfg), "--store", url, *args])
        assert r.exit_code == 2 and expected in r.output and "Traceback" not in r.output, r.output
        assert "secret" not in r.output


def test_validate_connects_to_the_store(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "crmsync.toml"
    (tmp_path / "f.xml").write_text("<rss/>")
    cfg.write_text('[sources.blogs]\nplugin = "rss"\nfeeds = ["f.xml"]\n')
    url = f"postgresql+psycopg://crm:secret@127.0.0.1:{port}/crm"
    r = CliRunner().invoke(create_cli(), ["-c", str(cfg), "--store", url, "validate"])
    assert r.exit_code == 2 and "cannot open the store" in r.output and "secret" not in r.output
    r = CliRunner().invoke(create_cli(), ["-c", str(cfg), "validate"])
    assert r.exit_code == 0 and "made on the first run" in r.output and "1 feed URL(s)" not in r.output and "0 feed URL(s), 1 feed file(s)" in r.output


def test_an_unknown_plugin_points_to_a_plugin_that_failed_to_import(tmp_path, monkeypatch):
    class _EP:
        name, value = "crmsync-shopify", "crmsync_shopify"
        dist = types.SimpleNamespace(metadata={"Name": "crmsync-shopify"}, version="1.0")

        def load(self):
            raise ImportError("No module named 'shopify_api'")

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: [_EP()] if group == "crmsync" else [])
    monkeypatch.delenv("CRMSYNC_LOAD_PLUGINS", raising=False)
    host = PluginHost()
    host.load()
    cfg = tmp_path / "crmsync.toml"
    cfg.write_text('[sources.shop]\nplugin = "shopify"\n')
    with pytest.raises(crmsync.ConfigError, match=r"unknown source plugin 'shopify'.*failed to load.*No module named 'shopify_api'"):
        load_config(cfg, host)
