"""The `scenic-twin` command as a user types it."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, "-m", "dashboard.cli", *args], cwd=ROOT, capture_output=True, text=True)


def test_assets_summary_json():
    r = run("assets", "summary", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["total_assets"] >= 10_000
    assert {"lamp_pole", "fire_hydrant", "manhole_cover", "cctv_camera"} <= set(s["counts_by_type"])
    assert all(z["capacity_instantaneous"] > 0 for z in s["zones"])
    assert 2850 <= s["route"]["length_m"] <= 3150
    assert set(s["bbox_wgs84"]) == {"min_lon", "min_lat", "max_lon", "max_lat"}


@pytest.mark.parametrize("cmd", [[], ["run"], ["assets"], ["assets", "build"], ["assets", "summary"],
                                 ["assets", "import"]])
def test_every_subcommand_has_help(cmd):
    r = run(*cmd, "--help")
    assert r.returncode == 0 and "usage: scenic-twin" in r.stdout


def test_missing_inventory_says_what_to_do(tmp_path):
    r = run("assets", "summary", "--inventory", str(tmp_path / "none.parquet"))
    assert r.returncode == 2 and "scenic-twin assets build" in r.stderr
