"""Deterministic build of the asset inventory from ``data/sources/*.toml``.

    scenic-twin assets build        -> data/inventory.parquet (GeoParquet, WGS 84)

Same sources in, byte-identical table out: no clock, no randomness, stable
ordering.  Every row carries the ``source`` of its position or rule.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon
from shapely.ops import unary_union

from .capacity import zone_capacity
from .geo import points_along, polyline_length
from .layout import Layout, LayoutError, load
from .tower import TowerSpec

COLUMNS = ["asset_id", "type", "name_zh", "name_en", "zone_id", "department",
           "base_elevation_m", "height_m", "attrs", "source", "geometry"]

# Chinese / English names of the furniture types (the register's vocabulary).
TYPE_NAMES = {
    "lamp_pole": ("路灯杆", "Lamp pole"), "ground_light": ("景观地灯", "Ground light"),
    "fire_hydrant": ("消火栓", "Fire hydrant"), "manhole_cover": ("井盖", "Manhole cover"),
    "gully_grate": ("雨水篦子", "Gully grate"), "street_tree": ("行道树", "Street tree"),
    "cctv_camera": ("视频监控", "CCTV camera"), "bollard": ("车止石", "Bollard"),
    "bin": ("垃圾桶", "Litter bin"), "bench": ("座椅", "Bench"), "signage": ("标识牌", "Sign"),
    "broadcast_speaker": ("广播音柱", "PA speaker"), "life_buoy": ("救生圈", "Life buoy"),
    "emergency_call": ("紧急呼叫柱", "Emergency call point"),
    "distribution_box": ("配电箱", "Distribution box"), "bike_parking": ("非机动车停放点", "Bike parking"),
    "toilet": ("公共厕所", "Public toilet"), "turnstile": ("闸机", "Turnstile"),
    "gate": ("出入口闸道", "Gate"), "lift": ("电梯", "Lift"), "escalator": ("自动扶梯", "Escalator"),
    "first_aid": ("医疗救护点", "First-aid point"),
}
NETWORK_NAMES = {"sewage": ("污水", "sewage"), "storm": ("雨水", "storm water"), "power": ("电力", "power"),
                 "telecom": ("通信", "telecom"), "water": ("给水", "water"), "gas": ("燃气", "gas")}


@dataclass
class _Rows:
    rows: list[dict] = field(default_factory=list)
    seq: dict = field(default_factory=lambda: defaultdict(int))

    def add(self, type_, context, geom_xy, *, name_zh, name_en, zone_id="", department="",
            base=0.0, height=0.0, attrs=None, source=""):
        self.seq[(type_, context)] += 1
        self.rows.append(dict(
            asset_id=f"{type_}-{context}-{self.seq[(type_, context)]:04d}", type=type_,
            name_zh=name_zh, name_en=name_en, zone_id=zone_id, department=department,
            base_elevation_m=float(base), height_m=float(height),
            attrs=json.dumps(attrs or {}, ensure_ascii=False, sort_keys=True),
            source=source, geometry=geom_xy))


def _offset(spec: str, width: float) -> float:
    spec = spec.replace(" ", "")
    if spec.startswith("edge"):
        return width / 2 + float(spec[4:] or 0)
    return float(spec)


def zone_geometries(lay: Layout) -> dict[str, Polygon]:
    """Zone polygons in the local frame; sectors are what the others leave."""
    water = unary_union([Polygon(lay.points(a["coords"], a["id"])) for a in lay.layout["area"]])
    out: dict[str, Polygon] = {}
    for z in lay.zones["zone"]:
        where = f"zones.toml zone {z['id']}"
        if "coords" in z:
            g = Polygon(lay.points(z["coords"], where))
        elif "line" in z:
            g = LineString(lay.points(z["line"], where)).buffer(z["width_m"] / 2, cap_style="flat")
        elif "ellipse" in z:
            e = z["ellipse"]
            g = shapely.affinity.scale(Point(0, 0).buffer(1, 64), e["a"], e["b"])
            if "hole_a" in e:
                g = g.difference(shapely.affinity.scale(Point(0, 0).buffer(1, 64), e["hole_a"], e["hole_b"]))
        elif "sector" in z:
            continue
        else:
            raise LayoutError(f"{where}: needs coords, line, ellipse or sector")
        out[z["id"]] = g
    fine = unary_union(list(out.values()))
    for z in lay.zones["zone"]:
        if "sector" in z:
            x0, y0, x1, y1 = z["sector"]
            out[z["id"]] = shapely.box(x0, y0, x1, y1).difference(fine).difference(water)
    return out


def zone_capacities(lay: Layout, geoms: dict[str, Polygon]) -> dict[str, dict]:
    apv = lay.zones["area_per_visitor_m2"]
    out = {}
    for z in lay.zones["zone"]:
        area = geoms[z["id"]].area
        pub = z.get("published_daily_capacity", {}).get("value")
        per = apv.get(z["space"], apv["walkway"])["value"]
        cap = zone_capacity(area, z["effective_ratio"]["value"] if "effective_ratio" in z else 1.0, per,
                            z["open_hours"]["value"], z["average_stay_h"]["value"], pub)
        out[z["id"]] = dict(area_m2=round(area, 1), effective_area_m2=round(cap.effective_area_m2, 1),
                            area_per_visitor_m2=per, open_hours=z["open_hours"]["value"],
                            average_stay_h=z["average_stay_h"]["value"],
                            capacity_instantaneous=cap.instantaneous, capacity_daily=cap.daily,
                            space=z["space"], published_daily=pub)
    return out


class _ZoneIndex:
    def __init__(self, geoms: dict[str, Polygon]):
        self.ids = list(geoms)
        self.geoms = [geoms[i] for i in self.ids]

    def of(self, x, y) -> np.ndarray:
        x, y = np.asarray(x, float), np.asarray(y, float)
        out = np.full(x.shape, "", dtype=object)
        for zid, g in zip(self.ids, self.geoms):
            hit = (out == "") & shapely.contains_xy(g, x, y)
            out[hit] = zid
        miss = out == ""
        if miss.any():   # on a zone edge or over water: the nearest zone owns it
            pts = shapely.points(x[miss], y[miss])
            d = np.stack([shapely.distance(g, pts) for g in self.geoms])
            out[miss] = np.asarray(self.ids, dtype=object)[d.argmin(axis=0)]
        return out

    def of_geom(self, g) -> str:
        p = g.representative_point()
        return str(self.of([p.x], [p.y])[0])


def _lines_by_class(lay: Layout) -> dict[str, list[dict]]:
    out = defaultdict(list)
    for ln in lay.layout["line"]:
        out[ln["class"]].append(dict(id=ln["id"], coords=lay.points(ln["coords"], ln["id"]),
                                     width=ln["width_m"], base=0.0))
    for b in lay.layout["bridge"]:
        out["bridge"].append(dict(id=b["id"], coords=lay.points(b["coords"], b["id"]),
                                  width=b["width_m"], base=b["deck_height_m"]))
    return out


def _furniture(lay: Layout, rows: _Rows, zones: _ZoneIndex, geoms: dict, blocked) -> dict[str, int]:
    lines = _lines_by_class(lay)
    CELL = 260.0   # grid cell of the neighbour search; >= the largest gap (toilets, 250 m)
    dropped: dict[str, int] = defaultdict(int)
    placed: dict[tuple, list] = defaultdict(list)   # (type, network, cell x, cell y) -> [(line, x, y)]

    def too_close(key, context, x, y, gap):
        # assets of one line are spaced by construction (and both sides of a
        # road are legitimately close); where two lines meet, keep the gap
        cx, cy = math.floor(x / CELL), math.floor(y / CELL)
        return any((px - x) ** 2 + (py - y) ** 2 < gap * gap
                   for i in (-1, 0, 1) for j in (-1, 0, 1)
                   for c, px, py in placed[(*key, cx + i, cy + j)] if c != context)

    def remember(key, context, x, y):
        placed[(*key, math.floor(x / CELL), math.floor(y / CELL))].append((context, x, y))

    for r_i, rule in enumerate(lay.furniture["rule"]):
        t = rule["type"]
        key = (t, rule.get("attrs", {}).get("network", ""))
        gap = rule["spacing_m"] * 0.5
        zh, en = TYPE_NAMES[t]
        net = rule.get("attrs", {}).get("network")
        if net:
            zh, en = NETWORK_NAMES[net][0] + zh, f"{en} ({NETWORK_NAMES[net][1]})"
        targets = []
        if "along" in rule:
            for ln in lines[rule["along"]]:
                xy, tan, ch = points_along(ln["coords"], rule["spacing_m"])
                normal = np.stack([-tan[:, 1], tan[:, 0]], axis=1)
                for side in rule["sides"]:
                    off = _offset(rule["offset"], ln["width"]) * side
                    pts = xy + normal * off
                    heading = np.degrees(np.arctan2(tan[:, 0], tan[:, 1])) % 360
                    for p, c, h in zip(pts, ch, heading):
                        targets.append((ln["id"], p, ln["base"], dict(line=ln["id"], chainage_m=round(float(c), 1),
                                                                      side=side, heading_deg=round(float(h), 1))))
        elif "perimeter" in rule:
            for z in lay.zones["zone"]:
                if z["space"] not in rule["perimeter"] or "sector" in z:
                    continue
                ring = geoms[z["id"]].buffer(float(rule["offset"])) if float(rule["offset"]) else geoms[z["id"]]
                ring = ring.exterior if hasattr(ring, "exterior") else ring.geoms[0].exterior
                xy, tan, ch = points_along(list(ring.coords), rule["spacing_m"])
                for p, c in zip(xy, ch):
                    targets.append((z["id"], p, z.get("base_elevation_m", 0.0),
                                    dict(perimeter=z["id"], chainage_m=round(float(c), 1))))
        for context, p, base, extra in targets:
            x, y = float(p[0]), float(p[1])
            if base == 0.0 and blocked(x, y):
                dropped[t] += 1
                continue
            if too_close(key, context, x, y, gap):
                dropped[t] += 1
                continue
            remember(key, context, x, y)
            rows.add(t, context, Point(x, y), name_zh=zh, name_en=en, zone_id=str(zones.of([x], [y])[0]),
                     department=rule["department"], base=base, height=rule["height_m"],
                     attrs={**rule.get("attrs", {}), **extra, "rule": r_i, "spacing_m": rule["spacing_m"]},
                     source=rule["source"])
    for cl in lay.furniture["cluster"]:
        t = cl["type"]
        zh, en = TYPE_NAMES[t]
        targets = []
        if cl["zone"] == "*":
            for z in lay.zones["zone"]:
                if "sector" in z:
                    continue
                c = geoms[z["id"]].representative_point()
                targets.append((z["id"], (c.x, c.y)))
        else:
            targets.append((cl["zone"], lay.point(cl["at"], f"cluster {t}")))
        for zid, (cx, cy) in targets:
            n, pitch = cl.get("count", 1), cl.get("pitch_m", 0.0)
            for k in range(n):
                x = cx + (k - (n - 1) / 2) * pitch
                rows.add(t, zid, Point(x, cy), name_zh=f"{zh}{k + 1}号", name_en=f"{en} {k + 1}",
                         zone_id=zid, department=cl["department"],
                         base=next((z.get("base_elevation_m", 0.0) for z in lay.zones["zone"] if z["id"] == zid), 0.0),
                         height=cl["height_m"], attrs={**cl.get("attrs", {}), "index": k + 1},
                         source=cl["source"])
    return dict(dropped)


def build(lay: Layout | None = None) -> tuple[gpd.GeoDataFrame, dict]:
    """The inventory as a GeoDataFrame in WGS 84, and a build report."""
    lay = lay or load()
    rows = _Rows()
    geoms = zone_geometries(lay)
    caps = zone_capacities(lay, geoms)
    zones = _ZoneIndex(geoms)
    L = lay.layout

    water = [Polygon(lay.points(a["coords"], a["id"])) for a in L["area"]]
    buildings = []
    for a, g in zip(L["area"], water):
        rows.add(a["type"], a["id"], g, name_zh=a["name_zh"], name_en=a["name_en"], zone_id=zones.of_geom(g),
                 department="water_affairs", base=-0.5, height=0.0, source=a["source"])
    for ln in L["line"]:
        g = LineString(lay.points(ln["coords"], ln["id"]))
        t = "road" if ln["class"] == "road" else "walkway"
        rows.add(t, ln["id"], g, name_zh=ln["name_zh"], name_en=ln["name_en"], zone_id=zones.of_geom(g),
                 department="roads" if t == "road" else "haizhu_city_management",
                 attrs=dict(width_m=ln["width_m"], length_m=round(g.length, 1)), source=ln["source"])
    for b in L["bridge"]:
        g = LineString(lay.points(b["coords"], b["id"]))
        attrs = {k: b[k] for k in ("structure", "length_m", "main_span_m", "width_m", "deck_height_m",
                                   "arch_rise_m", "tower_height_m") if k in b}
        rows.add("bridge", b["id"], g, name_zh=b["name_zh"], name_en=b["name_en"], zone_id=zones.of_geom(g),
                 department="bridges", base=0.0, height=b["deck_height_m"], attrs=attrs, source=b["source"])
    for p in L["place"]:
        x, y = lay.point(p["at"], p["id"])
        if p["id"] == "canton_tower":
            spec = TowerSpec()
            g = shapely.affinity.scale(Point(x, y).buffer(1, 64), spec.base_long_m / 2, spec.base_short_m / 2)
            attrs = {k: getattr(spec, k) for k in spec.__dataclass_fields__}
            height = spec.total_height_m
        else:
            g, attrs, height = Point(x, y), {}, p.get("height_m", 0.0)
        if "routes" in p:
            attrs["routes"] = p["routes"]
        rows.add(p["type"], p["id"], g, name_zh=p["name_zh"], name_en=p["name_en"], zone_id=zones.of_geom(g),
                 department="scenic_operations", height=height, attrs=attrs, source=p["source"])
    for b in L.get("building", []):
        g = Polygon(lay.points(b["coords"], b["id"]))
        buildings.append(g)
        rows.add("building", b["id"], g, name_zh=b["name_zh"], name_en=b["name_en"], zone_id=zones.of_geom(g),
                 department="property", height=b["height_m"], source=b["source"])
    water_u = unary_union(water)
    streets = unary_union([LineString(lay.points(ln["coords"])).buffer(ln["width_m"] / 2 + 8) for ln in L["line"]]
                          + [geoms[z["id"]] for z in lay.zones["zone"] if "sector" not in z])
    for grid in L.get("building_grid", []):
        k = 0
        for (ya, yb) in grid["y_rows"]:
            x = grid["x_from"]
            while x + grid["block_m"] <= grid["x_to"]:
                g = shapely.box(x, min(ya, yb), x + grid["block_m"], max(ya, yb))
                x += grid["block_m"] + grid["gap_m"]
                if g.intersects(water_u) or g.intersects(streets):
                    continue
                h = grid["height_m"][k % len(grid["height_m"])]
                k += 1
                buildings.append(g)
                rows.add("building", grid["id"], g, name_zh=f"{grid['name_zh']}{k}", name_en=f"{grid['name_en']} {k}",
                         zone_id=zones.of_geom(g), department="property", height=h, source=grid["source"])
    solid = unary_union(water + buildings)
    prepared = shapely.prepared.prep(solid)
    report = {"dropped_in_water_or_building_or_too_close": _furniture(
        lay, rows, zones, geoms, lambda x, y: prepared.contains(Point(x, y)))}
    for z in lay.zones["zone"]:
        g = geoms[z["id"]]
        attrs = {**caps[z["id"]], "params_source": {k: z[k]["source"] for k in
                 ("effective_ratio", "open_hours", "average_stay_h", "published_daily_capacity") if k in z}}
        rows.add("management_zone", z["id"], g, name_zh=z["name_zh"], name_en=z["name_en"], zone_id=z["id"],
                 department=z["department"], base=z.get("base_elevation_m", 0.0), attrs=attrs, source=z["source"])
    R = lay.route["route"]
    path = LineString(lay.points(R["path"], R["id"]))
    rows.add("patrol_route", R["id"], path, name_zh=R["name_zh"], name_en=R["name_en"], zone_id=zones.of_geom(path),
             department="scenic_operations", attrs=dict(length_m=round(path.length, 1),
                                                         checkpoints=[c["id"] for c in R["checkpoint"]]),
             source=R["source"])
    for i, c in enumerate(R["checkpoint"]):
        x, y = lay.point(c["at"], c["id"])
        chain = path.project(Point(x, y))
        rows.add("checkpoint", R["id"], Point(x, y), name_zh=c["name_zh"], name_en=c["name_en"],
                 zone_id=str(zones.of([x], [y])[0]), department="scenic_operations",
                 attrs=dict(order=i + 1, checkpoint_id=c["id"], chainage_m=round(chain, 1)), source=R["source"])
    sa = lay.layout["scenic_area"]
    g = Polygon(lay.points(sa["coords"], "scenic_area"))
    rows.add("scenic_area", "canton_tower", g, name_zh=sa["name_zh"], name_en=sa["name_en"], zone_id="",
             department="haizhu_city_management", source=sa["source"])

    gdf = gpd.GeoDataFrame(rows.rows, columns=COLUMNS, geometry="geometry", crs=None)
    fr = lay.frame
    gdf["geometry"] = shapely.transform(gdf.geometry.values,
                                        lambda a: np.stack(fr.to_lonlat(a[:, 0], a[:, 1]), axis=1))
    gdf = gdf.set_crs("EPSG:4326", allow_override=True)
    report["counts"] = gdf["type"].value_counts().sort_index().to_dict()
    report["route_length_m"] = round(path.length, 1)
    return gdf, report
