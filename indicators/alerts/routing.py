"""Walking distances on the path network, and place phrases for dispatch messages.

The network is built from the inventory's ``walkway``, ``road`` and
``bridge`` LineStrings in the twin's local metre frame: a node at every
vertex and at every crossing of two segments; a line end that stops short of
another line (within half their widths plus 2 m - a path meeting the edge of
a 24 m road has its centre line 12 m from the road's) is joined to it by a
short connector.  A position is snapped to the nearest edge; the distance
from the position to the edge is walked too.  Distances come from one
Dijkstra (``heapq``) from the case outwards, so ranking every staff member
costs one search.

This is why a person on the other bank is not "near" a case just because the
straight line across the river is short: the only ways over are the bridges.

:class:`Places` answers the other question of a dispatch: *where* is it, in
the words the real platform uses - 「广州塔东侧阅江西路」: the side of the tower
(东侧/西侧/南侧/北侧) and the nearest road (else walkway, else the bridge whose
deck the point is on) by ``name_zh``, else the zone's name; a patrol checkpoint within 40 m is added as a landmark
(「广州塔西侧滨江东路广州大桥底」).
"""
from __future__ import annotations

import heapq
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

LINE_TYPES = ("walkway", "road", "bridge")
SIDES = {"east": ("东侧", "east"), "west": ("西侧", "west"), "south": ("南侧", "south"), "north": ("北侧", "north")}


@dataclass(frozen=True)
class Line:
    """A named path of the network (local metres)."""

    id: str
    kind: str
    name_zh: str
    name_en: str
    zone_id: str
    xy: tuple[tuple[float, float], ...]
    width_m: float = 6.0


@dataclass(frozen=True)
class Snap:
    """Where a position meets the network: edge index, fraction along it, the
    distance walked to reach it."""

    edge: int
    t: float
    off_m: float


def _seg_point_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of points ``p`` [k,2] to segments a->b [m,2]: (dist [k,m], t [k,m])."""
    d = b - a
    l2 = np.maximum((d * d).sum(1), 1e-12)
    t = ((p[:, None, :] - a[None]) * d[None]).sum(2) / l2[None]
    t = np.clip(t, 0.0, 1.0)
    q = a[None] + t[..., None] * d[None]
    return np.hypot(*(p[:, None, :] - q).transpose(2, 0, 1)), t


class PathNetwork:
    """An undirected graph of the walkable lines; see the module docstring."""

    def __init__(self, lines: Sequence[Line]):
        self.lines = list(lines)
        segs, owner = [], []
        for li, ln in enumerate(self.lines):
            for p, q in zip(ln.xy, ln.xy[1:]):
                if p != q:
                    segs.append((p, q))
                    owner.append(li)
        a = np.array([s[0] for s in segs], float)
        b = np.array([s[1] for s in segs], float)
        owner_a = np.array(owner)
        widths = np.array([self.lines[i].width_m for i in owner], float)
        splits: list[list[tuple[float, tuple[float, float]]]] = [[(0.0, tuple(a[i])), (1.0, tuple(b[i]))]
                                                                  for i in range(len(segs))]
        connectors: list[tuple[tuple[float, float], tuple[float, float]]] = []
        # crossings of two segments of different lines (vectorised over all pairs)
        d1 = b - a
        r = a[None, :, :] - a[:, None, :]                     # a_j - a_i
        den = d1[:, None, 0] * d1[None, :, 1] - d1[:, None, 1] * d1[None, :, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            ti = (r[..., 0] * d1[None, :, 1] - r[..., 1] * d1[None, :, 0]) / den
            tj = (r[..., 0] * d1[:, None, 1] - r[..., 1] * d1[:, None, 0]) / den
        ok = (np.abs(den) > 1e-9) & (ti >= 0) & (ti <= 1) & (tj >= 0) & (tj <= 1) \
            & (owner_a[:, None] != owner_a[None, :])
        for i, j in zip(*np.nonzero(np.triu(ok, 1))):
            pt = tuple(a[i] + ti[i, j] * d1[i])
            splits[i].append((float(ti[i, j]), pt))
            splits[j].append((float(tj[i, j]), pt))
        # line ends that stop short of another line: join them
        ends = []
        for li, ln in enumerate(self.lines):
            ends += [(li, ln.xy[0]), (li, ln.xy[-1])]
        if ends:
            pe = np.array([e[1] for e in ends], float)
            dist, tt = _seg_point_dist(pe, a, b)
            for k, (li, p) in enumerate(ends):
                tol = (self.lines[li].width_m + widths) / 2 + 2.0
                cand = np.nonzero((dist[k] <= tol) & (owner_a != li))[0]
                # one junction per other line: its nearest segment
                best: dict[int, int] = {}
                for s in cand:
                    o = owner[s]
                    if o not in best or dist[k, s] < dist[k, best[o]]:
                        best[o] = s
                for s in best.values():
                    q = tuple(a[s] + tt[k, s] * d1[s])
                    splits[s].append((float(tt[k, s]), q))
                    if dist[k, s] > 0.01:
                        connectors.append((tuple(p), q))
        # nodes and edges
        index: dict[tuple[int, int], int] = {}
        nodes: list[tuple[float, float]] = []

        def node(p: tuple[float, float]) -> int:
            key = (round(p[0] * 100), round(p[1] * 100))
            if key not in index:
                index[key] = len(nodes)
                nodes.append((float(p[0]), float(p[1])))
            return index[key]

        edges: dict[tuple[int, int], tuple[float, int]] = {}
        for i, sp in enumerate(splits):
            sp.sort(key=lambda x: x[0])
            ids = [node(p) for _, p in sp]
            for u, v in zip(ids, ids[1:]):
                if u != v:
                    w = float(np.hypot(nodes[u][0] - nodes[v][0], nodes[u][1] - nodes[v][1]))
                    edges[(min(u, v), max(u, v))] = (w, owner[i])
        for p, q in connectors:
            u, v = node(p), node(q)
            if u != v:
                w = float(np.hypot(p[0] - q[0], p[1] - q[1]))
                edges.setdefault((min(u, v), max(u, v)), (w, -1))
        self.nodes = np.array(nodes, float)
        self.edges = np.array(list(edges), int).reshape(-1, 2)
        self.edge_len = np.array([w for w, _ in edges.values()], float)
        self.edge_line = np.array([o for _, o in edges.values()], int)
        self.adj: list[list[tuple[int, float]]] = [[] for _ in nodes]
        for (u, v), (w, _) in edges.items():
            self.adj[u].append((v, w))
            self.adj[v].append((u, w))

    # ------------------------------------------------------------------ queries
    def snap(self, xy: Sequence[float] | np.ndarray) -> list[Snap]:
        """Nearest edge of each point ([k,2] or one [2])."""
        p = np.atleast_2d(np.asarray(xy, float))
        a, b = self.nodes[self.edges[:, 0]], self.nodes[self.edges[:, 1]]
        dist, t = _seg_point_dist(p, a, b)
        e = dist.argmin(1)
        return [Snap(int(e[k]), float(t[k, e[k]]), float(dist[k, e[k]])) for k in range(len(p))]

    def _search(self, src: Snap) -> np.ndarray:
        """Dijkstra from a snapped position to every node."""
        dist = np.full(len(self.nodes), np.inf)
        u, v = self.edges[src.edge]
        w = self.edge_len[src.edge]
        heap = [(src.off_m + src.t * w, int(u)), (src.off_m + (1 - src.t) * w, int(v))]
        while heap:
            d, n = heapq.heappop(heap)
            if d >= dist[n]:
                continue
            dist[n] = d
            for m, wm in self.adj[n]:
                nd = d + wm
                if nd < dist[m]:
                    heapq.heappush(heap, (nd, m))
        return dist

    def walking_m(self, origin: Sequence[float], targets: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
        """Walking metres from ``origin`` to each target (inf when unreachable)."""
        targets = np.atleast_2d(np.asarray(targets, float))
        if len(targets) == 0:
            return np.zeros(0)
        src = self.snap(origin)[0]
        dist = self._search(src)
        out = np.empty(len(targets))
        for k, s in enumerate(self.snap(targets)):
            u, v = self.edges[s.edge]
            w = self.edge_len[s.edge]
            best = min(dist[u] + s.t * w, dist[v] + (1 - s.t) * w)
            if s.edge == src.edge:
                best = min(best, src.off_m + abs(s.t - src.t) * w)
            out[k] = best + s.off_m
        return out

    def components(self) -> int:
        """Number of connected parts (1 for a fully joined network)."""
        seen = np.zeros(len(self.nodes), bool)
        n = 0
        for s in range(len(self.nodes)):
            if seen[s]:
                continue
            n += 1
            stack = [s]
            seen[s] = True
            while stack:
                x = stack.pop()
                for y, _ in self.adj[x]:
                    if not seen[y]:
                        seen[y] = True
                        stack.append(y)
        return n


@dataclass(frozen=True)
class StaffPosition:
    """The latest known position of a staff member (local metres)."""

    staff_id: str
    x: float
    y: float
    status: str = "available"
    at: Any = None


@dataclass(frozen=True)
class Suggestion:
    staff_id: str
    walking_m: float
    straight_m: float


def suggest_staff(network: PathNetwork, xy: Sequence[float], staff: Iterable[StaffPosition], k: int = 3
                  ) -> list[Suggestion]:
    """The ``k`` nearest AVAILABLE staff by walking distance (ties by id)."""
    avail = [s for s in staff if s.status == "available"]
    if not avail:
        return []
    pts = np.array([(s.x, s.y) for s in avail], float)
    walk = network.walking_m(xy, pts)
    straight = np.hypot(pts[:, 0] - xy[0], pts[:, 1] - xy[1])
    order = sorted(range(len(avail)), key=lambda i: (walk[i], avail[i].staff_id))
    return [Suggestion(avail[i].staff_id, round(float(walk[i]), 1), round(float(straight[i]), 1))
            for i in order[:k] if np.isfinite(walk[i])]


# --------------------------------------------------------------------------- places
@dataclass
class ZonePlace:
    zone_id: str
    name_zh: str
    name_en: str
    polygon: Any                       # shapely geometry in local metres
    capacity: float = 0.0
    area_m2: float = 0.0


@dataclass
class Places:
    """What the alert core needs to know about the ground, in local metres."""

    tower_xy: tuple[float, float] = (0.0, 0.0)
    zones: dict[str, ZonePlace] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)
    cameras: dict[str, tuple[float, float]] = field(default_factory=dict)
    landmarks: list[tuple[str, str, float, float]] = field(default_factory=list)
    asset_department: dict[str, str] = field(default_factory=dict)
    frame: Any = None
    _network: PathNetwork | None = None

    @property
    def network(self) -> PathNetwork:
        if self._network is None:
            self._network = PathNetwork(self.lines)
        return self._network

    def to_xy(self, lon: float, lat: float) -> tuple[float, float]:
        x, y = self.frame.to_xy(lon, lat)
        return float(x), float(y)

    def to_lonlat(self, x: float, y: float) -> tuple[float, float]:
        lon, lat = self.frame.to_lonlat(x, y)
        return float(lon), float(lat)

    def zone_at(self, x: float, y: float) -> str | None:
        """The smallest zone containing the point (plazas sit inside street blocks)."""
        import shapely
        hits = [z for z in self.zones.values() if shapely.contains_xy(z.polygon, x, y)]
        return min(hits, key=lambda z: z.polygon.area).zone_id if hits else None

    def distance_to_zone(self, x: float, y: float, zone_id: str) -> float:
        import shapely
        z = self.zones.get(zone_id)
        if z is None:
            return float("inf")
        return float(z.polygon.distance(shapely.Point(x, y)))

    def side(self, x: float, y: float) -> tuple[str, str]:
        """东侧/西侧/南侧/北侧 of the tower, by the larger offset."""
        dx, dy = x - self.tower_xy[0], y - self.tower_xy[1]
        key = ("east" if dx >= 0 else "west") if abs(dx) >= abs(dy) else ("north" if dy >= 0 else "south")
        return SIDES[key]

    def nearest_line(self, x: float, y: float, kinds: Sequence[str], within_m: float) -> Line | None:
        """The nearest line of ``kinds`` within ``within_m`` (a bridge only when
        the point is on its deck: within half its width plus 3 m)."""
        best, bd = None, float("inf")
        for ln in self.lines:
            if ln.kind not in kinds or len(ln.xy) < 2:
                continue
            a = np.array(ln.xy[:-1], float)
            b = np.array(ln.xy[1:], float)
            d = float(_seg_point_dist(np.array([[x, y]]), a, b)[0].min())
            limit = min(within_m, ln.width_m / 2 + 3) if ln.kind == "bridge" else within_m
            if d <= limit and d < bd:
                best, bd = ln, d
        return best

    def place(self, x: float, y: float, zone_id: str | None = None) -> tuple[str, str]:
        """(zh, en) place phrase: 「广州塔东侧阅江西路」 / "Yuejiang West Road, east of Canton Tower"."""
        side_zh, side_en = self.side(x, y)
        line = (self.nearest_line(x, y, ("road",), 40.0) or self.nearest_line(x, y, ("walkway",), 40.0)
                or self.nearest_line(x, y, ("bridge",), 40.0))
        if line is not None:
            zh, en = line.name_zh, line.name_en
        else:
            z = self.zones.get(zone_id or "") or self.zones.get(self.zone_at(x, y) or "")
            zh, en = (z.name_zh, z.name_en) if z else ("", "")
        mark = min(((np.hypot(mx - x, my - y), mzh, men) for mzh, men, mx, my in self.landmarks),
                   default=None)
        if mark and mark[0] <= 40 and mark[1] not in zh:
            if zh and mark[1].startswith(zh):          # 海心桥 + 海心桥南桥头 -> 海心桥南桥头
                zh, en = mark[1], mark[2]
            else:
                zh, en = zh + mark[1], f"{en} ({mark[2]})" if en else mark[2]
        return f"广州塔{side_zh}{zh}", (f"{en}, {side_en} of Canton Tower" if en else f"{side_en} of Canton Tower")


def places_from_inventory(gdf, frame) -> Places:
    """Adapter: build :class:`Places` from the inventory GeoDataFrame (WGS 84)."""
    import shapely

    def local(geom):
        return shapely.transform(geom, lambda c: np.column_stack(frame.to_xy(c[:, 0], c[:, 1])))

    p = Places(frame=frame)
    t = gdf["type"]
    tower = gdf[(t == "landmark") & (gdf["asset_id"].str.contains("canton_tower"))]
    if len(tower):
        c = local(tower.iloc[0].geometry).centroid
        p.tower_xy = (float(c.x), float(c.y))
    for row in gdf[t == "management_zone"].itertuples():
        a = json.loads(row.attrs)
        p.zones[row.zone_id] = ZonePlace(row.zone_id, row.name_zh, row.name_en, local(row.geometry),
                                         float(a.get("capacity_instantaneous", 0)), float(a.get("area_m2", 0)))
    for row in gdf[t.isin(LINE_TYPES)].itertuples():
        if row.geometry.geom_type != "LineString":
            continue
        a = json.loads(row.attrs)
        g = local(row.geometry)
        p.lines.append(Line(row.asset_id, row.type, row.name_zh, row.name_en, row.zone_id,
                            tuple((float(x), float(y)) for x, y in g.coords), float(a.get("width_m", 6.0))))
    cams = gdf[t == "cctv_camera"]
    if len(cams):
        x, y = frame.to_xy(cams.geometry.x.to_numpy(), cams.geometry.y.to_numpy())
        p.cameras = {aid: (float(a), float(b)) for aid, a, b in zip(cams["asset_id"], x, y)}
    cps = gdf[t == "checkpoint"]
    if len(cps):
        x, y = frame.to_xy(cps.geometry.x.to_numpy(), cps.geometry.y.to_numpy())
        p.landmarks = [(zh, en, float(a), float(b)) for zh, en, a, b in zip(cps["name_zh"], cps["name_en"], x, y)]
    p.asset_department = dict(zip(gdf["asset_id"], gdf["department"]))
    return p


__all__ = ["Line", "PathNetwork", "Places", "Snap", "StaffPosition", "Suggestion", "places_from_inventory",
           "suggest_staff"]
