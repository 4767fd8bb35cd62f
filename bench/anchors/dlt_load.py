#!/usr/bin/env python3
"""Anchor 2, the dlt transport: load already-normalized records from JSON Lines
into DuckDB with ``loader_file_format="jsonl"``. Runs in its own venv with
``dlt[duckdb]``; prints {"records": N, "seconds": S} as JSON.

    python dlt_load.py records.jsonl workdir
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    path, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ["DLT_DATA_DIR"] = str(work / "dlt-data")
    import dlt

    def records():  # noqa: ANN202
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)

    t0 = time.perf_counter()
    pipeline = dlt.pipeline(pipeline_name="bench", destination=dlt.destinations.duckdb(str(work / "bench.duckdb")), dataset_name="crm",
                            pipelines_dir=str(work / "pipelines"))
    info = pipeline.run(records(), table_name="interactions", loader_file_format="jsonl")
    seconds = time.perf_counter() - t0
    with pipeline.sql_client() as client:
        n = client.execute_sql("SELECT count(*) FROM interactions")[0][0]
    print(json.dumps({"records": n, "seconds": round(seconds, 3), "loads": len(info.loads_ids)}))


if __name__ == "__main__":
    main()
