"""The 3D scene of the twin as deck.gl JSON plus compact binary attributes.

Pure presenters: inventory in, data out.  Geometry is sent in the twin's
local frame (metres east/north of the tower, COORDINATE_SYSTEM.METER_OFFSETS)
because float32 lon/lat would only resolve ~0.8 m here.  The bulk of the
assets (street furniture, ~10k points) travels as one binary buffer; the
few large features (river, roads, bridges, buildings, zones, route, tower
lattice) as JSON.  Layer ids are stable so live updates only touch data.
"""
from __future__ import annotations

import json
import struct

import numpy as np
import pydeck as pdk

from twin_assets.geo import LocalFrame
from twin_assets.inventory import FURNITURE_TYPES
from twin_assets.tower import TowerSpec, lattice, shell_mesh

S = pdk.types.String  # a literal string, not an accessor expression

# RGBA per furniture type, chosen for a dark wall display.
FURNITURE_STYLE: dict[str, tuple[tuple[int, int, int, int], float]] = {
    "lamp_pole": ((255, 214, 102, 255), 1.6), "ground_light": ((255, 236, 170, 200), 0.7),
    "fire_hydrant": ((255, 72, 72, 255), 1.8), "manhole_cover": ((150, 160, 175, 255), 1.2),
    "gully_grate": ((110, 120, 135, 220), 0.8), "street_tree": ((60, 150, 90, 200), 2.2),
    "cctv_camera": ((80, 200, 255, 255), 2.0), "bollard": ((170, 170, 170, 200), 0.5),
    "bin": ((140, 200, 120, 255), 1.0), "bench": ((190, 150, 110, 255), 1.0),
    "signage": ((230, 230, 230, 255), 1.0), "broadcast_speaker": ((200, 140, 255, 255), 1.2),
    "life_buoy": ((255, 130, 40, 255), 1.2), "emergency_call": ((255, 90, 160, 255), 1.6),
    "distribution_box": ((200, 200, 120, 255), 1.2), "bike_parking": ((120, 180, 220, 255), 1.6),
    "toilet": ((120, 220, 220, 255), 3.0), "turnstile": ((240, 240, 240, 255), 0.6),
    "gate": ((255, 255, 255, 255), 1.2), "lift": ((255, 200, 255, 255), 1.5),
    "escalator": ((220, 180, 255, 255), 1.5), "first_aid": ((255, 60, 60, 255), 3.0),
}
assert set(FURNITURE_STYLE) == set(FURNITURE_TYPES)

# How furniture stands up where the scene is seen from the side (the patrol phone's eye view):
# a "pole" (a shaded column of the asset's inventory height, ``height_m``) or a "tree" (a trunk
# and a crown), with the half-width in metres.  Widths are drawing choices, not measurements:
# poles are drawn about twice their real ~0.2 m so that a phone shows them; a street tree's crown
# is the disc's 2.2 m (≈ 4.4 m across, under the 8-9 m planting distance of data/sources/furniture.toml).
# Types not listed stay flat discs: covers, grates and bike bays lie in the ground, and the lifts'
# and escalators' heights are their travel inside a structure.
STANDING: dict[str, tuple[str, float]] = {
    "lamp_pole": ("pole", 0.2), "ground_light": ("pole", 0.15), "fire_hydrant": ("pole", 0.25),
    "street_tree": ("tree", 2.2), "cctv_camera": ("pole", 0.12), "bollard": ("pole", 0.12),
    "bin": ("pole", 0.3), "bench": ("pole", 0.5), "signage": ("pole", 0.15),
    "broadcast_speaker": ("pole", 0.12), "life_buoy": ("pole", 0.2), "emergency_call": ("pole", 0.25),
    "distribution_box": ("pole", 0.4), "toilet": ("pole", 3.0), "turnstile": ("pole", 0.3),
    "gate": ("pole", 0.5), "first_aid": ("pole", 1.5),
}
assert set(STANDING) <= set(FURNITURE_TYPES)

TIER_COLOURS = {  # zone fill by alert tier (Emergency Response Law colours)
    "none": (70, 130, 180, 70), "blue": (30, 120, 255, 120), "yellow": (250, 210, 30, 140),
    "orange": (255, 140, 0, 150), "red": (230, 30, 30, 170), "nodata": (120, 120, 120, 60),
}


def _xy(frame: LocalFrame, coords) -> list[list[float]]:
    a = np.asarray(coords, dtype=float)[:, :2]
    x, y = frame.to_xy(a[:, 0], a[:, 1])
    return np.round(np.stack([x, y], axis=1), 2).tolist()


def _rings(frame, geom) -> list[list[list[float]]]:
    polys = getattr(geom, "geoms", [geom])
    return [[_xy(frame, p.exterior.coords)] + [_xy(frame, r.coords) for r in p.interiors] for p in polys]


def _names(row) -> dict:
    return {"id": row.asset_id, "type": row.type, "name_zh": row.name_zh, "name_en": row.name_en}


def _layer(kind: str, id_: str, data, frame: LocalFrame, **props) -> pdk.Layer:
    return pdk.Layer(kind, data=data, id=id_,
                     coordinate_system=S("@@#COORDINATE_SYSTEM.METER_OFFSETS"),
                     coordinate_origin=[frame.lon0, frame.lat0], **props)


def static_scene(gdf, frame: LocalFrame, zone_tiers: dict[str, str] | None = None) -> dict:
    """deck.gl JSON of everything but the furniture and the tower shell."""
    zone_tiers = zone_tiers or {}
    by = {t: gdf[gdf["type"] == t] for t in gdf["type"].unique()}
    empty = gdf.iloc[0:0]
    get = lambda t: by.get(t, empty)

    river = [dict(_names(r), polygon=ring) for r in get("river").itertuples() for ring in _rings(frame, r.geometry)]
    ground = [dict(_names(r), polygon=ring) for r in get("scenic_area").itertuples() for ring in _rings(frame, r.geometry)]
    zones = []
    for r in get("management_zone").itertuples():
        a = json.loads(r.attrs)
        for ring in _rings(frame, r.geometry):
            zones.append(dict(_names(r), zone_id=r.zone_id, polygon=ring, capacity=a["capacity_instantaneous"],
                              color=list(TIER_COLOURS[zone_tiers.get(r.asset_id, "none")])))
    paths = []
    for t, col in (("road", [90, 96, 110, 255]), ("walkway", [196, 170, 120, 255])):
        for r in get(t).itertuples():
            a = json.loads(r.attrs)
            paths.append(dict(_names(r), path=_xy(frame, r.geometry.coords), width=a["width_m"], color=col))
    decks, arches = [], []
    for r in get("bridge").itertuples():
        a = json.loads(r.attrs)
        xy = np.asarray(_xy(frame, r.geometry.coords))
        z = np.full(len(xy), a["deck_height_m"], dtype=float)
        z[0] = z[-1] = 0.0   # approach ramps come down to the ground
        decks.append(dict(_names(r), path=np.round(np.column_stack([xy, z]), 2).tolist(),
                          width=a["width_m"], color=[220, 225, 235, 255]))
        if a.get("structure") == "arch":   # the arch over the main span, between the river ends
            p0, p1 = xy[1], xy[2]
            s = np.linspace(0, 1, 25)
            arc = p0 + (p1 - p0) * s[:, None]
            zz = a["deck_height_m"] + a.get("arch_rise_m", 30) * np.sin(np.pi * s)
            arches.append(dict(_names(r), path=np.round(np.column_stack([arc, zz]), 2).tolist()))
    buildings = [dict(_names(r), polygon=ring, height=r.height_m)
                 for r in get("building").itertuples() for ring in _rings(frame, r.geometry)]
    route = [dict(_names(r), path=_xy(frame, r.geometry.coords)) for r in get("patrol_route").itertuples()]
    points = []
    for t, col, rad in (("checkpoint", [255, 255, 255, 255], 6), ("metro_station", [230, 60, 60, 255], 14),
                        ("tram_stop", [60, 200, 120, 255], 10), ("bus_stop", [250, 170, 30, 255], 8),
                        ("pier", [60, 160, 250, 255], 10), ("landmark", [255, 200, 80, 255], 12)):
        for r in get(t).itertuples():
            c = r.geometry.centroid
            points.append(dict(_names(r), position=_xy(frame, [(c.x, c.y)])[0], color=col, radius=rad))
    spec = TowerSpec()
    tower = [dict(id="landmark-canton_tower-0001", type="landmark", name_zh="广州塔", name_en="Canton Tower",
                  path=np.round(p, 2).tolist()) for p in lattice(spec)]

    layers = [
        _layer("SolidPolygonLayer", "ground", ground, frame, get_polygon="polygon",
               get_fill_color=[24, 28, 36, 255], pickable=False),
        _layer("SolidPolygonLayer", "river", river, frame, get_polygon="polygon",
               get_fill_color=[16, 52, 92, 255], pickable=True),
        _layer("PolygonLayer", "zones", zones, frame, get_polygon="polygon", get_fill_color="color",
               get_line_color=[140, 200, 255, 200], line_width_min_pixels=1, stroked=True, filled=True,
               pickable=True, auto_highlight=True),
        _layer("PathLayer", "paths", paths, frame, get_path="path", get_width="width", get_color="color",
               width_units=S("meters"), pickable=True, cap_rounded=True, joint_rounded=True),
        _layer("PathLayer", "bridges", decks, frame, get_path="path", get_width="width", get_color="color",
               width_units=S("meters"), pickable=True),
        _layer("PathLayer", "arches", arches, frame, get_path="path", get_width=2.5,
               get_color=[240, 240, 255, 255], width_units=S("meters"), pickable=True),
        _layer("SolidPolygonLayer", "buildings", buildings, frame, get_polygon="polygon", extruded=True,
               get_elevation="height", get_fill_color=[64, 72, 90, 230], pickable=True),
        _layer("PathLayer", "route", route, frame, get_path="path", get_width=4,
               get_color=[0, 255, 200, 220], width_units=S("meters"), width_min_pixels=2, pickable=True),
        _layer("PathLayer", "tower", tower, frame, get_path="path", get_width=0.9,
               get_color=[255, 170, 90, 255], width_units=S("meters"), width_min_pixels=1, pickable=True),
        _layer("ScatterplotLayer", "places", points, frame, get_position="position", get_fill_color="color",
               get_radius="radius", radius_units=S("meters"), radius_min_pixels=3, radius_max_pixels=24, pickable=True,
               stroked=True, get_line_color=[0, 0, 0, 255], line_width_min_pixels=1),
    ]
    deck = pdk.Deck(layers=layers, map_provider=None,
                    initial_view_state=pdk.ViewState(longitude=frame.lon0, latitude=frame.lat0, zoom=15.2,
                                                     pitch=55, bearing=-15, max_pitch=85, min_zoom=12, max_zoom=21))
    out = json.loads(deck.to_json())
    out.pop("mapStyle", None)
    out["origin"] = [frame.lon0, frame.lat0]
    return out


FURNITURE_MAGIC = b"STF2"


def furniture_rows(gdf):
    """The rows drawn as furniture, in the order of the binary buffer."""
    return gdf[gdf["type"].isin(FURNITURE_TYPES)]


def furniture_binary(gdf, frame: LocalFrame) -> bytes:
    """Street furniture as binary columns.

    Layout: b"STF2", uint32 count, uint32 header length, JSON header
    (type names, disc radius per type, how each type stands - :data:`STANDING`),
    padding to 4 bytes, then float32 x,y,z (count*3; z 0.3 m above the ground),
    uint8 RGBA (count*4), uint8 type code (count), padding to 4 bytes, float32
    height in metres (count, from the inventory).  Picking returns the index;
    the server maps it back to the asset id.
    """
    f = furniture_rows(gdf)
    types = list(FURNITURE_STYLE)
    code = f["type"].map({t: i for i, t in enumerate(types)}).to_numpy(np.uint8)
    x, y = frame.to_xy(f.geometry.x.to_numpy(), f.geometry.y.to_numpy())
    z = f["base_elevation_m"].to_numpy() + 0.3
    pos = np.column_stack([x, y, z]).astype("<f4")
    col = np.asarray([FURNITURE_STYLE[t][0] for t in types], dtype=np.uint8)[code]
    height = np.nan_to_num(f["height_m"].to_numpy(np.float64)).astype("<f4")
    header = json.dumps({"types": types, "radius": [FURNITURE_STYLE[t][1] for t in types],
                         "stand": [STANDING.get(t) for t in types],
                         "origin": [frame.lon0, frame.lat0]}, separators=(",", ":")).encode()
    header += b" " * (-(12 + len(header)) % 4)
    pad = b"\0" * (-len(f) % 4)                          # the heights start on 4 bytes
    return b"".join([FURNITURE_MAGIC, struct.pack("<II", len(f), len(header)), header,
                     pos.tobytes(), col.tobytes(), code.tobytes(), pad, height.tobytes()])


TOWER_MAGIC = b"STM1"


def tower_binary(spec: TowerSpec = TowerSpec()) -> bytes:
    """The tower's shell mesh: b"STM1", uint32 vertices, uint32 indices,
    float32 positions, float32 normals, uint32 indices."""
    pos, nor, idx = shell_mesh(spec)
    return b"".join([TOWER_MAGIC, struct.pack("<II", len(pos), len(idx)),
                     pos.astype("<f4").tobytes(), nor.astype("<f4").tobytes(), idx.astype("<u4").tobytes()])
