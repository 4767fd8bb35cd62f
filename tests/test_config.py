"""Config loading: clear errors naming file, key and choices; secrets as references."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync.cli import create_cli
from crmsync.host.config import Secret, load_config, redact
from crmsync.contract.errors import ConfigError
from crmsync.host.plugins import get_host


def _write(tmp: Path, text: str) -> Path:
    p = tmp / "crmsync.toml"
    p.write_text(text)
    return p


def _err(tmp: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp, text), get_host())
    return str(info.value)


def test_unknown_plugin_lists_choices(tmp_path):
    msg = _err(tmp_path, '[sources.blog]\nplugin = "rsss"\nfeeds = ["x"]\n')
    assert str(tmp_path / "crmsync.toml") in msg
    assert "[sources.blog]" in msg and "'rsss'" in msg
    assert "available: crm_csv, email, hubspot, reviews, rss, salesforce" in msg


def test_unknown_and_missing_keys(tmp_path):
    msg = _err(tmp_path, '[sinks.crm]\nplugin = "crm_csv"\noutput_dirr = "x"\n')
    assert "unknown key(s) 'output_dirr'" in msg and "valid keys: bom, columns, max_rows_per_file, mode, new_authors, output_dir, profile" in msg
    assert "'output_dir' is required" in msg
    msg = _err(tmp_path, '[sinks.crm]\nplugin = "crm_csv"\noutput_dir = "o"\nmode = "excel"\n')
    assert "key 'mode'" in msg and "valid choices: spreadsheet, raw" in msg
    msg = _err(tmp_path, '[store]\nurl = "sqlite://"\n[stores]\n')
    assert "unknown key(s) 'stores'" in msg and "valid keys: enrichers, identity, privacy, run, sinks, sources, store" in msg


def test_bad_toml_and_missing_file(tmp_path):
    msg = _err(tmp_path, "[sources.blog\n")
    assert "not valid TOML" in msg and "line 1" in msg
    with pytest.raises(ConfigError, match="crmsync init"):
        load_config(None, get_host())


def test_sink_source_filter_must_exist(tmp_path):
    msg = _err(tmp_path, '[sources.a]\nplugin = "rss"\nfeeds = ["x"]\n[sinks.crm]\nplugin = "crm_csv"\noutput_dir = "o"\nsources = ["b"]\n')
    assert "unknown source 'b'" in msg and "configured sources: a" in msg


def test_defaults_and_relative_store(tmp_path):
    cfg = load_config(_write(tmp_path, '[sources.a]\nplugin = "rss"\nfeeds = ["f"]\n'), get_host())
    assert cfg.sources["a"].options["max_bytes"] == 50 * 1024 * 1024 and cfg.sources["a"].options["concurrency"] == 32
    assert cfg.store_url == f"sqlite:///{tmp_path / '.crmsync' / 'crmsync.db'}"


def test_run_workers_and_concurrency(tmp_path):
    import os

    cfg = load_config(_write(tmp_path, '[sources.a]\nplugin = "rss"\nfeeds = ["f"]\n'), get_host())
    assert cfg.workers == "process"  # Linux: sources in forked worker processes
    assert cfg.concurrency == max(2, len(os.sched_getaffinity(0)))  # one per core
    cfg = load_config(_write(tmp_path, '[run]\nworkers = "thread"\nconcurrency = 3\n'), get_host())
    assert (cfg.workers, cfg.concurrency) == ("thread", 3)
    msg = _err(tmp_path, '[run]\nworkers = "fibers"\n')
    assert "[run] key 'workers' must be \"process\" or \"thread\"" in msg and "'fibers'" in msg


class _SecretSink:
    pass


def test_secrets_are_references_and_never_shown(tmp_path, monkeypatch, caplog):
    import crmsync

    class SecretSink(crmsync.Sink):
        name = "secret_sink"
        config_schema = {"type": "object", "properties": {"token": {"type": "string", "secret": True}, "user": {"type": "string"}}, "required": ["token"]}

        def write(self, deliveries):
            self.log.warning("using token %s", self.config["token"].get())
            raise crmsync.FatalError(f"login failed with token {self.config['token'].get()}")

    host = get_host()
    plugin = type("P", (), {"register_sinks": staticmethod(crmsync.hookimpl(lambda register: register(SecretSink)))})()
    host.add(plugin)
    try:
        msg = _err(tmp_path, '[sinks.s]\nplugin = "secret_sink"\ntoken = "hunter2-literal"\n')
        assert "is a secret" in msg and "env:NAME" in msg and "hunter2-literal" not in msg
        monkeypatch.setenv("MY_TOKEN", "s3cr3t-value-xyz")
        cfg_path = _write(tmp_path, '[sources.f]\nplugin = "rss"\nfeeds = ["feeds"]\n[sinks.s]\nplugin = "secret_sink"\ntoken = "env:MY_TOKEN"\n')
        (tmp_path / "feeds").mkdir()
        (tmp_path / "feeds" / "a.xml").write_text('<rss version="2.0"><channel><item><guid>https://x.example/1</guid><title>t</title></item></channel></rss>')
        cfg = load_config(cfg_path, host)
        opts = cfg.resolved_options(cfg.sinks["s"])
        assert isinstance(opts["token"], Secret) and opts["token"].get() == "s3cr3t-value-xyz"
        assert "s3cr3t" not in repr(opts) and "env:MY_TOKEN" in repr(opts)
        with caplog.at_level(logging.WARNING):
            result = CliRunner().invoke(create_cli(), ["-c", str(cfg_path), "run", "--json"])
        assert result.exit_code == 1
        report = json.loads(result.stdout)
        assert "login failed with token ***" in report["sinks"][0]["errors"][0]
        assert "s3cr3t-value-xyz" not in result.output
        assert redact("x s3cr3t-value-xyz y") == "x *** y"
        db = (tmp_path / ".crmsync" / "crmsync.db").read_bytes()
        assert b"s3cr3t-value-xyz" not in db
        # file: references, relative to the config
        (tmp_path / "tok").write_text("from-a-file\n")
        cfg = load_config(_write(tmp_path, '[sinks.s]\nplugin = "secret_sink"\ntoken = "file:tok"\n'), host)
        assert cfg.resolved_options(cfg.sinks["s"])["token"].get() == "from-a-file"
        cfg = load_config(_write(tmp_path, '[sinks.s]\nplugin = "secret_sink"\ntoken = "env:NOPE_NOT_SET"\n'), host)
        with pytest.raises(ConfigError, match="NOPE_NOT_SET is not set"):
            cfg.resolved_options(cfg.sinks["s"])
    finally:
        host.remove("P")


def test_validate_command(tmp_path):
    p = _write(tmp_path, '[sources.a]\nplugin = "rss"\nfeeds = ["f"]\n')
    (tmp_path / "f").write_text("<rss/>")  # validate checks that input paths exist
    r = CliRunner().invoke(create_cli(), ["-c", str(p), "validate"])
    assert r.exit_code == 0 and "ok (1 sources, 0 sinks, 0 enrichers" in r.output
    p.write_text('[sources.a]\nplugin = "nope"\n')
    r = CliRunner().invoke(create_cli(), ["-c", str(p), "validate"])
    assert r.exit_code == 2 and "unknown source plugin 'nope'" in r.output


def test_init_writes_a_valid_starter(tmp_path):
    target = tmp_path / "crmsync.toml"
    r = CliRunner().invoke(create_cli(), ["init", str(target)])
    assert r.exit_code == 0, r.output
    cfg = load_config(target, get_host())
    assert set(cfg.sources) == {"blogs"} and set(cfg.sinks) == {"crm"}
    r = CliRunner().invoke(create_cli(), ["init", str(target)])
    assert r.exit_code == 2 and "--force" in r.output
