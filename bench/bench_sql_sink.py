#!/usr/bin/env python3
"""The ``sql`` sink's rows/s into SQLite and PostgreSQL, against the floor of a plain
DBAPI ``executemany`` of the same rows (built beforehand), in batches of the same size,
one transaction each, measured in the same run.

* **insert**: a first delivery into empty own tables (interactions, authors and
  contact links, for both).
* **COPY + merge** (PostgreSQL): batches of 5,000 loaded with COPY into a staging
  table and merged with one ``INSERT ... SELECT ... ON CONFLICT`` (``copy_from``),
  against the sink's own row batches.
* **upsert**: every row again (what a re-delivery after a crash, or a mass edit,
  costs: ``ON CONFLICT DO UPDATE`` on every row), against the floor's plain
  upsert statement.

PostgreSQL is started here (Debian's binaries, as the tests do); without them, SQLite only.

    .venv/bin/python bench/bench_sql_sink.py --sizes 10000 100000

Writes bench/results/bench-sql-sink.json (not committed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

BATCH = 500


def deliveries(n: int) -> list[Any]:
    import crmsync

    base = datetime(2026, 1, 1, tzinfo=UTC)
    people = [crmsync.Identity(name=f"Author {i}", emails=[f"a{i}@example.org"], crm_ids={"crm": f"C{i}"} if i % 3 == 0 else {}) for i in range(max(1, n // 10))]
    out = []
    for i in range(n):
        rec = crmsync.Interaction.create(
            source="bench", channel="forum", native_id=f"https://forum.example/t/{i}", kind="post", url=f"https://forum.example/t/{i}",
            title=f"Thread {i}: the rocket does not start", body_text=("The ignition fails after the update. " * 8) + str(i),
            published=base + timedelta(minutes=i), author=people[i % len(people)],
        )
        out.append(crmsync.Delivery(rec, 1, "create", None, rec.author))
    return out


def run_sink(url: str, batch: list[Any], work: Path, **extra: Any) -> float:
    import crmsync
    from crmsync.host.config import validate_options
    from crmsync_sql import SqlSink

    options = validate_options(SqlSink.config_schema, {"url": "env:X", **extra}, where="bench")
    options["url"] = crmsync.Secret(url, "env:X")
    sink = SqlSink("bench", options, crmsync.Context(config_dir=work))
    sink.open()
    t0 = time.perf_counter()
    size = sink.batch_size
    for i in range(0, len(batch), size):
        got = sink.write(batch[i : i + size])
        assert len(got) == len(batch[i : i + size]), sink.rejections[:1]
    seconds = time.perf_counter() - t0
    sink.close()
    return seconds


def floor(url: str, batch: list[Any], upsert: bool) -> float:
    """A plain DBAPI executemany of the rows the sink writes (interactions, authors,
    contact links), built beforehand, in the same batches and transactions."""
    from sqlalchemy import create_engine

    from crmsync_sql.tables import author_rows, interaction_row, utcnow

    engine = create_engine(url)
    raw = engine.raw_connection()
    dialect = engine.dialect.name
    cur = raw.cursor()
    now = utcnow()
    batches = []
    for i in range(0, len(batch), BATCH):
        part = batch[i : i + BATCH]
        people, links = author_rows(part, now)
        batches.append(([interaction_row(d, now) for d in part], people, links))
    keys = {"floor_interactions": ["interaction_id"], "floor_authors": ["identity_id"], "floor_links": ["identity_id", "crm"]}
    samples = {"floor_interactions": batches[0][0][0], "floor_authors": batches[0][1][0], "floor_links": (batches[0][2] or [{"identity_id": "", "crm": "", "crm_id": ""}])[0]}
    mark = "?" if dialect == "sqlite" else "%s"
    sql = {}
    for table, sample in samples.items():
        cols = list(sample)
        if not upsert:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute(f"CREATE TABLE {table} ({', '.join(c + ' TEXT' for c in cols)}, PRIMARY KEY ({', '.join(keys[table])}))")
        text = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(mark for _ in cols)})"
        if upsert or table != "floor_interactions":  # authors recur across batches: always upserted
            text += f" ON CONFLICT ({', '.join(keys[table])}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in cols if c not in keys[table])
        sql[table] = (text, cols)
    raw.commit()

    def values(table: str, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        cols = sql[table][1]
        return [tuple(str(r[c]) if r[c] is not None else None for c in cols) for r in rows]

    prepared = [(values("floor_interactions", a), values("floor_authors", b), values("floor_links", c)) for a, b, c in batches]
    t0 = time.perf_counter()
    for a, b, c in prepared:
        cur.executemany(sql["floor_interactions"][0], a)
        cur.executemany(sql["floor_authors"][0], b)
        if c:
            cur.executemany(sql["floor_links"][0], c)
        raw.commit()
    seconds = time.perf_counter() - t0
    raw.close()
    engine.dispose()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "bench-sql-sink.json")
    args = ap.parse_args()
    from tests.conftest import _pg_bin, start_postgres

    results = []
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-sql-") as tmp:
        work = Path(tmp)
        targets = [("sqlite", lambda n: f"sqlite:///{work / f'bench-{n}.db'}")]
        stop = None
        if _pg_bin() is not None:
            pg, stop = start_postgres(_pg_bin())
            from sqlalchemy import create_engine, text

            admin = create_engine(pg, isolation_level="AUTOCOMMIT")

            def pg_db(n: int) -> str:
                with admin.connect() as conn:
                    conn.execute(text(f"CREATE DATABASE bench_{n}"))
                return pg.rsplit("/", 1)[0] + f"/bench_{n}"

            targets.append(("postgresql", pg_db))
        try:
            for n in args.sizes:
                batch = deliveries(n)
                for name, make in targets:
                    url = make(n)
                    row: dict[str, Any] = {"database": name, "rows": n}
                    for phase, upsert in (("insert", False), ("upsert", True)):
                        s = run_sink(url, batch, work)
                        f = floor(url, batch, upsert)
                        row[phase] = {"sink_rows_s": round(n / s), "floor_rows_s": round(n / f), "ratio": round(f / s, 2)}
                    if name == "postgresql":
                        # the staging path: batches of 5,000 through COPY and one merge, on a
                        # fresh database (insert) and again (upsert)
                        copy_url = make(n * 10 + 1)
                        row["copy_merge"] = {
                            "insert_rows_s": round(n / run_sink(copy_url, batch, work, batch_size=5000, copy_from=2000)),
                            "upsert_rows_s": round(n / run_sink(copy_url, batch, work, batch_size=5000, copy_from=2000)),
                        }
                        print(f"{name:<10} {n:>7}: COPY + merge in batches of 5,000: insert {row['copy_merge']['insert_rows_s']}/s, upsert {row['copy_merge']['upsert_rows_s']}/s", flush=True)
                    results.append(row)
                    print(f"{name:<10} {n:>7}: insert {row['insert']['sink_rows_s']}/s vs floor {row['insert']['floor_rows_s']}/s ({row['insert']['ratio']}x); "
                          f"upsert {row['upsert']['sink_rows_s']}/s vs floor {row['upsert']['floor_rows_s']}/s ({row['upsert']['ratio']}x)", flush=True)
        finally:
            if stop is not None:
                admin.dispose()
                stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
