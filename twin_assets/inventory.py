"""The asset inventory: one GeoParquet table (WGS 84) of everything in the twin.

Columns (build.COLUMNS): asset_id (stable, unique), type, name_zh, name_en,
zone_id (a management zone), department (owner), base_elevation_m,
height_m, attrs (JSON object of type-specific attributes, e.g. a camera's
fov_deg / range_m / heading_deg, a hydrant's nominal pressure, a zone's
capacities), source (where the position or rule comes from), geometry.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import geopandas as gpd
import numpy as np

from .fsio import atomic_write
from .geo import LocalFrame
from .layout import data_dir, load as load_layout

INVENTORY_FILE = "inventory.parquet"
FURNITURE_TYPES = ("lamp_pole", "ground_light", "fire_hydrant", "manhole_cover", "gully_grate",
                   "street_tree", "cctv_camera", "bollard", "bin", "bench", "signage",
                   "broadcast_speaker", "life_buoy", "emergency_call", "distribution_box",
                   "bike_parking", "toilet", "turnstile", "gate", "lift", "escalator", "first_aid")


def inventory_path() -> Path:
    return data_dir() / INVENTORY_FILE


def write(gdf: gpd.GeoDataFrame, path: Path | None = None) -> Path:
    """Write atomically: a reader never sees a half-written inventory."""
    return atomic_write(path or inventory_path(),
                        lambda tmp: gdf.to_parquet(tmp, index=False, compression="zstd", write_covering_bbox=False))


def load(path: Path | None = None) -> gpd.GeoDataFrame:
    path = Path(path or inventory_path())
    if not path.exists():
        raise FileNotFoundError(f"no inventory at {path}: run `scenic-twin assets build` first")
    return gpd.read_parquet(path)


@lru_cache(maxsize=1)
def frame() -> LocalFrame:
    return load_layout().frame


def attrs(gdf: gpd.GeoDataFrame) -> list[dict]:
    return [json.loads(a) for a in gdf["attrs"]]


def zones(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    z = gdf[gdf["type"] == "management_zone"].copy()
    a = attrs(z)
    for k in ("area_m2", "effective_area_m2", "capacity_instantaneous", "capacity_daily", "space"):
        z[k] = [x[k] for x in a]
    return z


def route(gdf: gpd.GeoDataFrame):
    return gdf[gdf["type"] == "patrol_route"].iloc[0]


def summary(gdf: gpd.GeoDataFrame) -> dict:
    fr = frame()
    z = zones(gdf)
    r = route(gdf)
    rx, ry = fr.to_xy(*np.asarray(r.geometry.coords).T)
    length = float(np.hypot(np.diff(rx), np.diff(ry)).sum())
    minx, miny, maxx, maxy = gdf.total_bounds
    return {
        "total_assets": int(len(gdf)),
        "counts_by_type": {k: int(v) for k, v in gdf["type"].value_counts().sort_index().items()},
        "zones": [
            {"zone_id": row.zone_id,
             "name_zh": row.name_zh, "name_en": row.name_en, "space": row.space,
             "area_m2": row.area_m2, "effective_area_m2": row.effective_area_m2,
             "capacity_instantaneous": int(row.capacity_instantaneous),
             "capacity_daily": int(row.capacity_daily)}
            for row in z.itertuples()],
        "route": {"id": r.asset_id, "length_m": round(length, 1),
                  "checkpoints": int((gdf["type"] == "checkpoint").sum())},
        "bbox_wgs84": {"min_lon": round(minx, 6), "min_lat": round(miny, 6),
                       "max_lon": round(maxx, 6), "max_lat": round(maxy, 6)},
    }

