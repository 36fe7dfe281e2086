"""`scenic-twin bench engine` at toy size: every side does the work it says, and the ratios are
the engine's whole tick against theirs over the same ticks (issue 13: an honest benchmark)."""
from __future__ import annotations

import json

from indicators.catalog import load_catalog
from indicators.engine import bench


def test_the_baselines_do_the_same_window_work_and_the_report_says_what_each_side_did():
    catalog = load_catalog()
    specs, covered = bench._window_specs(catalog)
    batches = bench._per_tick_batches(catalog, 12, 800, seed=3)
    schemas: dict = {}
    for tick in batches:
        for kind, t in tick:
            schemas.setdefault(kind, []).append(t.schema)
    import pyarrow as pa
    pol = bench._Polars(specs)
    duck = bench._DuckDB(specs, {k: pa.unify_schemas([s.remove(s.get_field_index("departments"))
                                                      if "departments" in s.names else s for s in v])
                                 for k, v in schemas.items()})
    for tick in batches:
        pol.tick(tick)
        duck.tick(tick)
        # the same events held after append, de-duplication and expiry, and the same groups out
        assert pol.T == duck.T and pol.rows == duck.rows
        for kind, df in pol.frames.items():
            assert df.height == duck.db.execute(f'SELECT COUNT(*) FROM "{kind}"').fetchall()[0][0], kind
    assert pol.rows > 0 and 0 < covered < len(catalog)


def test_a_resent_batch_is_taken_once_by_every_side():
    catalog = load_catalog()
    specs, _ = bench._window_specs(catalog)
    batches = bench._per_tick_batches(catalog, 4, 500, seed=5)
    pol = bench._Polars(specs)
    for tick in batches:
        pol.tick(tick)
    held = {k: df.height for k, df in pol.frames.items()}
    pol.tick(batches[-1])                 # the last tick's batches again: duplicates by event_id
    assert {k: df.height for k, df in pol.frames.items()} == held


def test_the_cli_prints_ratios_to_floor_polars_and_duckdb_per_size(capsys):
    assert bench.main(["--events-per-tick", "600", "--seconds", "3", "--json", "--quiet"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["indicators"] == 1373 and r["machine"]["cores"] >= 1
    (run,) = r["runs"]
    assert set(run["ratio"]) == {"floor", "polars", "duckdb"} and all(v > 0 for v in run["ratio"].values())
    assert run["engine"]["indicators_per_tick"] == 1373
    assert run["engine"]["late"] == 0            # the engine takes every event the baselines take
    assert run["polars"]["indicators_covered"] == run["duckdb"]["indicators_covered"] < 1373
    assert "de-duplicate" in run["polars"]["work"] and "de-duplicate" in run["engine"]["work"]
    assert run["engine"]["tick_ms_p99"] >= run["engine"]["tick_ms_p50"] > 0
    assert bench.main(["--events-per-tick", "600", "--seconds", "2", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "× floor" in text and "× polars" in text and "× duckdb" in text and "of the 1,373 indicators" in text


def test_every_side_runs_on_one_thread_as_the_report_says():
    # polars sizes its pool at its first import (default: every core); the bench gives it one
    # thread, as the engine has and duckdb gets (SET threads = 1), and the report carries each count
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "POLARS_MAX_THREADS"}
    code = "from indicators.engine import bench; print(bench._import_polars().thread_pool_size())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    catalog = load_catalog()
    specs, _ = bench._window_specs(catalog)
    assert bench._DuckDB(specs, {}).threads == 1
    r = bench.run_engine_bench((600,), 2, warmup=2)
    (run,) = r["runs"]
    assert run["engine"]["threads"] == 1 == run["duckdb"]["threads"]
    text = bench.format_report(r)
    assert (run["polars"]["threads"] == 1) == ("not the same core count" not in text)
