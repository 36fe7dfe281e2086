"""Importing a surveyed inventory: good files merge, bad files are refused whole."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Point

from twin_assets import inventory as inv
from twin_assets.importer import ImportRefused, import_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def target(tmp_path, inventory):
    out = tmp_path / "inventory.parquet"
    inv.write(inventory, out)
    return out


def feature(aid, lon=113.3190, lat=23.1085, **props):
    p = dict(asset_id=aid, type="fire_hydrant", name_zh="消火栓(测绘)", name_en="Hydrant (survey)",
             zone_id="tower_base", department="fire_rescue", base_elevation_m=0.0, height_m=0.9,
             attrs={"kind": "outdoor_dn150"})
    p.update(props)
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": p}


def write_geojson(path, features):
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False))
    return path


def sha(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def test_good_geojson_is_merged(tmp_path, target, inventory):
    f = write_geojson(tmp_path / "survey.geojson", [feature("survey-hydrant-1"), feature("survey-hydrant-2", lon=113.3185)])
    res = import_file(f, out=target)
    assert res == {"imported": 2, "replaced": 0, "total": len(inventory) + 2}
    got = inv.load(target)
    row = got[got["asset_id"] == "survey-hydrant-2"].iloc[0]
    assert row["type"] == "fire_hydrant" and row.geometry.x == pytest.approx(113.3185)
    assert json.loads(row["attrs"]) == {"kind": "outdoor_dn150"}


def test_geoparquet_import_and_replace(tmp_path, target, inventory):
    gdf = gpd.GeoDataFrame([dict(asset_id="lamp_pole-road_yuejiang_west-0001", type="lamp_pole", name_zh="路灯杆",
                                 name_en="Lamp pole", zone_id="streets_central", department="street_lighting",
                                 base_elevation_m=0.0, height_m=12.0, attrs="{}", source="survey 2026",
                                 geometry=Point(113.3195, 23.1080))], crs="EPSG:4326")
    f = tmp_path / "survey.parquet"
    gdf.to_parquet(f)
    with pytest.raises(ImportRefused) as e:
        import_file(f, out=target)
    assert "already in the inventory" in str(e.value.problems[0])
    res = import_file(f, out=target, replace=True)
    assert res["replaced"] == 1 and res["total"] == len(inventory)
    got = inv.load(target)
    assert got.loc[got["asset_id"] == "lamp_pole-road_yuejiang_west-0001", "height_m"].iloc[0] == 12.0


def test_bad_file_lists_every_problem_and_writes_nothing(tmp_path, target):
    before = sha(target)
    feats = [
        feature("ok-1"),
        feature("ok-1"),                                              # duplicate id
        feature("far-away", lon=116.40, lat=39.90),                   # Beijing: outside the zone
        feature("no-type", type=""),                                  # missing type
        feature("bad-zone", zone_id="atlantis"),                      # unknown zone
        feature("bad-height", height_m=-3),                           # negative height
        feature("bad-kind", type="flying_saucer"),                    # unknown type
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[113.319, 23.108], [113.320, 23.109],
                                                                             [113.320, 23.108], [113.319, 23.109],
                                                                             [113.319, 23.108]]]},
         "properties": feature("bowtie")["properties"]},               # self-intersecting polygon
        {"type": "Feature", "geometry": None, "properties": {"asset_id": "nogeom"}},
    ]
    f = write_geojson(tmp_path / "bad.geojson", feats)
    with pytest.raises(ImportRefused) as e:
        import_file(f, out=target)
    text = [str(p) for p in e.value.problems]
    expect = [("row 2 (ok-1)", "asset_id", "duplicate of row 1"),
              ("row 3 (far-away)", "geometry", "outside the scenic area"),
              ("row 4 (no-type)", "type", "required"),
              ("row 5 (bad-zone)", "zone_id", "unknown zone"),
              ("row 6 (bad-height)", "height_m", ">= 0"),
              ("row 7 (bad-kind)", "type", "unknown type"),
              ("row 8 (bowtie)", "geometry", "invalid"),
              ("row 9 (nogeom)", "geometry", "missing"),
              ("row 9 (nogeom)", "name_zh", "required")]
    for row, field, msg in expect:
        assert any(t.startswith(row) and f"'{field}'" in t and msg in t for t in text), (row, field, text)
    assert sha(target) == before


def test_cli_refuses_with_exit_code_and_reasons(tmp_path, target):
    f = write_geojson(tmp_path / "bad.geojson", [feature("x", zone_id="nowhere")])
    r = subprocess.run([sys.executable, "-m", "dashboard.cli", "assets", "import", str(f), "--out", str(target)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2
    assert "row 1 (x), field 'zone_id': unknown zone 'nowhere'" in r.stderr
    assert "nothing was written" in r.stderr


def test_not_json_and_wrong_suffix(tmp_path, target):
    bad = tmp_path / "x.geojson"
    bad.write_text("{not json")
    with pytest.raises(ImportRefused, match="problem"):
        import_file(bad, out=target)
    other = tmp_path / "x.csv"
    other.write_text("a,b")
    with pytest.raises(ImportRefused) as e:
        import_file(other, out=target)
    assert "unsupported file type" in str(e.value.problems[0])


def test_a_survey_file_that_would_stop_the_service_is_refused(tmp_path, target):
    """A department that is no department was accepted once and then kept `scenic-twin run` from
    starting; the import now names it, and runs the service's own start-up check on the result."""
    before = sha(target)
    f = write_geojson(tmp_path / "bad.geojson", [feature("lamp-x", department="Dept. of <Lamps>")])
    r = subprocess.run([sys.executable, "-m", "dashboard.cli", "assets", "import", str(f), "--out", str(target)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "field 'department': unknown department 'Dept. of <Lamps>'" in r.stderr, r.stderr
    assert sha(target) == before

    def start_up(merged):
        raise ValueError("catalog: family facility.availability expands to no indicator")
    with pytest.raises(ImportRefused) as e:
        import_file(write_geojson(tmp_path / "ok.geojson", [feature("lamp-y")]), out=target, check=start_up)
    assert "would not start the service: catalog: family facility.availability" in str(e.value.problems[0])
    assert sha(target) == before
