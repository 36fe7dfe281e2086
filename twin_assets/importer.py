"""Import of a surveyed inventory (GeoJSON or GeoParquet, WGS 84).

A real deployment has its own survey.  The file is validated as a whole
before anything is written: a bad file is refused with *every* problem
listed by row and field, and the inventory on disk is untouched.  A good
file is merged (new ids added; with ``replace`` existing ids replaced) and
the inventory is rewritten atomically.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from shapely.geometry import shape

from . import inventory as inv
from .build import COLUMNS, TYPE_NAMES

KNOWN_TYPES = set(TYPE_NAMES) | {"river", "road", "walkway", "bridge", "landmark", "metro_station", "tram_stop",
                                 "bus_stop", "pier", "building", "management_zone", "patrol_route", "checkpoint",
                                 "scenic_area"}
REQUIRED = ("asset_id", "type", "name_zh", "name_en", "zone_id", "department")
NUMERIC = ("base_elevation_m", "height_m")
MAX_TEXT = 500


@dataclass(frozen=True)
class Problem:
    row: int | None      # 1-based feature / row number, None for the file
    asset_id: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = "file" if self.row is None else f"row {self.row}" + (f" ({self.asset_id})" if self.asset_id else "")
        return f"{where}, field '{self.field}': {self.message}"


class ImportRefused(Exception):
    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


def _read_geojson(path: Path) -> tuple[list[dict], list[Problem]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return [], [Problem(None, None, "-", f"not valid JSON: {e}")]
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        return [], [Problem(None, None, "type", "a GeoJSON FeatureCollection with a 'features' list is expected")]
    rows, problems = [], []
    for i, f in enumerate(doc["features"], start=1):
        props = f.get("properties") if isinstance(f, dict) else None
        if not isinstance(props, dict):
            problems.append(Problem(i, None, "properties", "missing or not an object"))
            continue
        row = dict(props)
        try:
            row["geometry"] = shape(f["geometry"]) if f.get("geometry") else None
        except Exception as e:  # shapely raises several types for bad coordinates
            row["geometry"] = e
        rows.append(row)
    return rows, problems


def _read_parquet(path: Path) -> tuple[list[dict], list[Problem]]:
    try:
        gdf = gpd.read_parquet(path)
    except Exception as e:
        return [], [Problem(None, None, "-", f"not a readable GeoParquet file: {e}")]
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326 and "CRS84" not in str(gdf.crs):
        return [], [Problem(None, None, "crs", f"coordinates must be WGS 84 (EPSG:4326), the file says {gdf.crs}")]
    return [dict(r) for r in gdf.to_dict("records")], []


def validate_rows(rows: list[dict], existing_ids: set[str], zone_ids: set[str], bounds, replace: bool,
                  departments: set[str] | None = None) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, r in enumerate(rows, start=1):
        aid = r.get("asset_id") if isinstance(r.get("asset_id"), str) else None
        def bad(field, msg):
            problems.append(Problem(i, aid, field, msg))
        for f in REQUIRED:
            v = r.get(f)
            if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
                bad(f, "required, missing or empty")
            elif not isinstance(v, str):
                bad(f, f"must be text, got {type(v).__name__}")
            elif len(v) > MAX_TEXT:
                bad(f, f"longer than {MAX_TEXT} characters")
        if aid is not None:
            if aid in seen:
                bad("asset_id", f"duplicate of row {seen[aid]}")
            else:
                seen[aid] = i
            if aid in existing_ids and not replace:
                bad("asset_id", "already in the inventory (use --replace to replace it)")
        d = r.get("department")
        if departments is not None and isinstance(d, str) and d.strip() and d not in departments:
            bad("department", f"unknown department {d[:60]!r}; known: {', '.join(sorted(departments))}")
        t = r.get("type")
        if isinstance(t, str) and t and t not in KNOWN_TYPES:
            bad("type", f"unknown type {t!r}; known: {', '.join(sorted(KNOWN_TYPES))}")
        z = r.get("zone_id")
        if isinstance(z, str) and z and z not in zone_ids and t != "management_zone":
            bad("zone_id", f"unknown zone {z!r}")
        for f in NUMERIC:
            v = r.get(f, 0.0)
            try:
                fv = float(v)
            except (TypeError, ValueError):
                bad(f, f"must be a number, got {v!r}")
                continue
            if not math.isfinite(fv):
                bad(f, "must be finite")
            elif f == "height_m" and fv < 0:
                bad(f, "must be >= 0")
            elif not -100 <= fv <= 1000:
                bad(f, "outside -100 .. 1000 m")
        a = r.get("attrs", "{}")
        if isinstance(a, str):
            try:
                a = json.loads(a)
            except json.JSONDecodeError as e:
                bad("attrs", f"not valid JSON: {e}")
                a = {}
        if not isinstance(a, dict):
            bad("attrs", "must be a JSON object")
        g = r.get("geometry")
        if isinstance(g, Exception):
            bad("geometry", f"cannot be read: {g}")
        elif g is None or g.is_empty:
            bad("geometry", "missing or empty")
        else:
            if not g.is_valid:
                bad("geometry", f"invalid: {shapely.is_valid_reason(g)}")
            if not g.within(bounds):
                minx, miny, maxx, maxy = g.bounds
                bad("geometry", f"outside the scenic area (bounds {minx:.5f},{miny:.5f} .. {maxx:.5f},{maxy:.5f}); "
                                "coordinates must be WGS 84 lon/lat")
    return problems


def import_file(path, *, replace: bool = False, out=None, departments: set[str] | None = None,
                check=None) -> dict:
    """Merge a survey file into the inventory, or refuse it with every problem and write nothing.
    ``departments``: the department ids an asset may name; ``check(merged)``: the check the
    service runs at start over the merged inventory (building the indicator catalog) - a file
    that would stop the service from starting is refused with what that check said."""
    path = Path(path)
    if not path.exists():
        raise ImportRefused([Problem(None, None, "-", f"no such file: {path}")])
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        rows, problems = _read_geojson(path)
    elif suffix in (".parquet", ".geoparquet"):
        rows, problems = _read_parquet(path)
    else:
        raise ImportRefused([Problem(None, None, "-", "unsupported file type: use .geojson or .parquet")])
    current = inv.load(out) if out and Path(out).exists() else inv.load()
    zones = current[current["type"] == "management_zone"]
    area = current[current["type"] == "scenic_area"].geometry.iloc[0]
    if not rows and not problems:
        problems.append(Problem(None, None, "features", "the file holds no assets"))
    problems += validate_rows(rows, set(current["asset_id"]), set(zones["zone_id"]), area, replace, departments)
    if problems:
        raise ImportRefused(problems)
    new = gpd.GeoDataFrame([{c: (json.dumps(r.get("attrs", {}), ensure_ascii=False, sort_keys=True)
                                 if c == "attrs" and not isinstance(r.get("attrs"), str) else
                                 r.get(c, 0.0 if c in NUMERIC else ("" if c != "geometry" else None)))
                             for c in COLUMNS} for r in rows], columns=COLUMNS, geometry="geometry", crs="EPSG:4326")
    for c in NUMERIC:
        new[c] = new[c].astype(float)
    kept = current[~current["asset_id"].isin(new["asset_id"])]
    merged = gpd.GeoDataFrame(pd.concat([kept, new], ignore_index=True), geometry="geometry", crs="EPSG:4326")
    if check is not None:
        try:
            check(merged)
        except Exception as e:                   # whatever the start-up check says is the reason
            raise ImportRefused([Problem(None, None, "inventory",
                                         f"the merged inventory would not start the service: {e}"[:600])]) from None
    inv.write(merged, out)
    return {"imported": int(len(new)), "replaced": int(len(current) - len(kept)), "total": int(len(merged))}
