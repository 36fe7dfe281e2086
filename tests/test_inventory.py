"""The inventory a control room relies on: complete, valid, inside the zone, placed by its rules."""
from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from twin_assets import inventory as inv
from twin_assets.build import build
from twin_assets.layout import load as load_layout


def test_summary_meets_the_foundation_targets(inventory):
    s = inv.summary(inventory)
    assert s["total_assets"] >= 10_000
    for t in ("lamp_pole", "fire_hydrant", "manhole_cover", "cctv_camera", "gate", "turnstile", "toilet",
              "first_aid", "bench", "bin", "signage"):
        assert s["counts_by_type"].get(t, 0) > 0, t
    assert s["zones"] and all(z["capacity_instantaneous"] > 0 and z["capacity_daily"] > 0 for z in s["zones"])
    assert 2850 <= s["route"]["length_m"] <= 3150
    b = s["bbox_wgs84"]
    assert 113.29 < b["min_lon"] < b["max_lon"] < 113.36 and 23.09 < b["min_lat"] < b["max_lat"] < 23.13


def test_committed_inventory_is_exactly_what_the_build_produces(inventory):
    fresh, _ = build()
    assert fresh.equals(inventory), "data/inventory.parquet is stale: run `scenic-twin assets build`"


def test_ids_unique_and_every_row_complete(inventory):
    assert inventory["asset_id"].is_unique
    for col in ("asset_id", "type", "name_zh", "name_en", "department", "source"):
        assert (inventory[col].str.len() > 0).all(), col
    non_area = inventory[inventory["type"] != "scenic_area"]
    zone_ids = set(inventory.loc[inventory["type"] == "management_zone", "zone_id"])
    assert set(non_area["zone_id"]) <= zone_ids
    assert all(isinstance(json.loads(a), dict) for a in inventory["attrs"])


def test_geometry_valid_and_inside_the_scenic_area(inventory):
    assert shapely.is_valid(inventory.geometry.values).all()
    assert not inventory.geometry.is_empty.any()
    area = inventory[inventory["type"] == "scenic_area"].geometry.iloc[0]
    outside = inventory[~inventory.geometry.within(area) & (inventory["type"] != "scenic_area")]
    assert outside.empty, outside[["asset_id", "type"]].head().to_string()
    assert inventory.crs.to_epsg() == 4326


def test_furniture_points_sit_in_their_own_zone(inventory, frame):
    zones = inventory[inventory["type"] == "management_zone"].set_index("zone_id").geometry
    furn = inventory[inventory["type"].isin(inv.FURNITURE_TYPES)]
    inside = [zones[z].buffer(1e-5).contains(g) for z, g in zip(furn["zone_id"], furn.geometry)]
    assert np.mean(inside) > 0.98   # the rest sit on a zone edge and belong to the nearest zone


def _xy(frame, gdf):
    return np.column_stack(frame.to_xy(gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy()))


def test_spacing_rules_hold_along_every_line(inventory, frame):
    """Consecutive assets of one rule on one line are exactly the rule's spacing apart."""
    furn = inventory[inventory["type"].isin(inv.FURNITURE_TYPES)]
    attrs = [json.loads(a) for a in furn["attrs"]]
    groups: dict[tuple, list[float]] = {}
    for a in attrs:
        if "line" in a:
            groups.setdefault((a["rule"], a["line"], a["side"]), []).append(a["chainage_m"])
    rules = load_layout().furniture["rule"]
    assert len(groups) > 50
    for (r, line, side), ch in groups.items():
        gaps = np.diff(sorted(ch))
        spacing = rules[r]["spacing_m"]
        # a gap is one spacing, or a whole multiple where a placement fell in water / a building
        k = np.round(gaps / spacing)
        assert (k >= 1).all() and np.allclose(gaps, k * spacing, atol=0.11), (r, line, side)


def test_same_kind_of_asset_keeps_its_minimum_gap_across_lines(inventory, frame):
    furn = inventory[inventory["type"].isin(["lamp_pole", "fire_hydrant", "cctv_camera"])]
    for t, g in furn.groupby("type"):
        xy = _xy(frame, g)
        a = [json.loads(s) for s in g["attrs"]]
        gap = np.array([x["spacing_m"] * 0.5 for x in a])
        ctx = np.array([x.get("line", x.get("perimeter", "")) for x in a])
        d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
        other_line = ctx[:, None] != ctx[None, :]
        close = (d < np.minimum(gap[:, None], gap[None, :]) - 0.01) & other_line
        assert not close.any(), t


def test_every_road_and_promenade_point_is_within_a_hydrant_protection_radius(inventory, frame):
    """GB 50974-2014: an outdoor hydrant protects a radius of 150 m."""
    hyd = _xy(frame, inventory[inventory["type"] == "fire_hydrant"])
    lines = inventory[inventory["type"].isin(["road", "walkway"])]
    for g in lines.geometry:
        xy = np.column_stack(frame.to_xy(*np.asarray(g.coords).T))
        seg = shapely.LineString(xy)
        pts = np.array([seg.interpolate(s).coords[0] for s in np.arange(0, seg.length, 10)])
        d = np.hypot(*(pts[:, None, :] - hyd[None, :, :]).transpose(2, 0, 1)).min(axis=1)
        assert d.max() <= 150, (d.max())


def test_cameras_carry_what_the_video_feed_needs(inventory):
    cams = inventory[inventory["type"] == "cctv_camera"]
    for a in map(json.loads, cams["attrs"]):
        assert 0 < a["fov_deg"] <= 360 and a["range_m"] > 0 and a["ai"] is True


def test_landmarks_at_their_published_positions(inventory, frame):
    tower = inventory[inventory["asset_id"] == "landmark-canton_tower-0001"].iloc[0]
    assert tower.height_m == 600
    minx, miny, maxx, maxy = tower.geometry.bounds
    w = (maxx - minx) * frame.m_per_deg_lon
    h = (maxy - miny) * frame.m_per_deg_lat
    assert w == pytest.approx(80, abs=1) and h == pytest.approx(60, abs=1)
    c = tower.geometry.centroid
    assert (c.x, c.y) == pytest.approx((113.319140, 23.108990), abs=1e-6)
    hx = inventory[inventory["asset_id"] == "bridge-haixin_bridge-0001"].iloc[0]
    a = json.loads(hx["attrs"])
    assert a["length_m"] == 488 and a["main_span_m"] == 198 and a["width_m"] == 15
    assert (inventory["type"] == "checkpoint").sum() >= 5
