"""Patrols of the riverside route: the route as chainage, and the coverage log.

A patrol (on foot, or the *virtual roaming patrol* of the phone view) walks the
route of the inventory's ``patrol_route`` asset (2,943.5 m, 9 checkpoints, out
along the river and back).  Everything here is in chainage - metres along the
route from its start - so a camera gliding along it, a scrubber dragged over
it and a GPS track snapped to it are judged the same way:

* the phone reports the chainage intervals it has walked and the checkpoints
  where it stopped; reports may repeat, overlap and arrive out of order (a phone
  on a weak network resends), so the log keeps the *union* - sending the same
  progress twice changes nothing;
* a **segment** (checkpoint to next checkpoint) is covered when the union spans
  it (within ``TOLERANCE_M`` at each end); a checkpoint counts when the patrol
  stopped there and the union reaches it;
* the **cameras seen** are the cameras within ``SIGHT_M`` of a covered stretch.

:class:`PatrolStore` keeps the log in SQLite (WAL, ``synchronous=FULL``: a
report that was answered survives a crash).  A supervisor lists the recent
patrols and the **gaps**: segments nobody covered in that time.  The console's window is a
rolling one (the last 12 hours), not the calendar day: a night shift's patrols do not vanish
from the list at midnight.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from indicators.localtime import LOCAL

TOLERANCE_M = 5.0          # a segment's ends may be missed by this much (a stop a few metres short)
SIGHT_M = 30.0             # a camera this close to a covered stretch was passed
MAX_INTERVALS = 200        # per report: a phone that scrubs back and forth sends a few dozen at most
MAX_TEXT = 200


class PatrolError(ValueError):
    """A patrol report that does not make sense (unknown checkpoint, chainage off the route …)."""


@dataclass(frozen=True)
class Checkpoint:
    id: str
    asset_id: str
    order: int
    chainage_m: float
    x: float
    y: float
    zone_id: str
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class Segment:
    id: str                    # "cp_a>cp_b"
    start: str
    end: str
    from_m: float
    to_m: float


@dataclass(frozen=True)
class Route:
    """The route in the scene's local metres: its polyline, checkpoints and segments."""

    route_id: str
    name_zh: str
    name_en: str
    path: tuple[tuple[float, float], ...]
    length_m: float
    checkpoints: tuple[Checkpoint, ...]
    cameras: tuple[tuple[str, float], ...] = ()          # (camera asset id, chainage of its nearest point)

    @property
    def segments(self) -> tuple[Segment, ...]:
        cps = self.checkpoints
        return tuple(Segment(f"{a.id}>{b.id}", a.id, b.id, a.chainage_m, b.chainage_m)
                     for a, b in zip(cps, cps[1:]))

    def checkpoint(self, cp_id: str) -> Checkpoint:
        for c in self.checkpoints:
            if c.id == cp_id:
                return c
        raise PatrolError(f"checkpoint {cp_id!r} is not on route {self.route_id} "
                          f"(one of {', '.join(c.id for c in self.checkpoints)})")

    def at(self, chainage_m: float) -> tuple[float, float, float]:
        """(x, y, heading in degrees clockwise from north) at a chainage."""
        p = np.asarray(self.path, dtype=float)
        seg = np.hypot(*np.diff(p, axis=0).T)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        s = float(np.clip(chainage_m, 0.0, cum[-1]))
        i = int(min(np.searchsorted(cum, s, side="right") - 1, len(seg) - 1))
        while i < len(seg) - 1 and seg[i] == 0:
            i += 1
        f = 0.0 if seg[i] == 0 else (s - cum[i]) / seg[i]
        x, y = p[i] + f * (p[i + 1] - p[i])
        dx, dy = p[i + 1] - p[i]
        return float(x), float(y), float(np.degrees(np.arctan2(dx, dy)) % 360)

    def to_page(self) -> dict[str, Any]:
        """What the phone needs to roam: the path, its length, checkpoints and segments."""
        return {"id": self.route_id, "zh": self.name_zh, "en": self.name_en, "length_m": round(self.length_m, 1),
                "path": [[round(x, 2), round(y, 2)] for x, y in self.path],
                "checkpoints": [{"id": c.id, "asset": c.asset_id, "order": c.order, "s": round(c.chainage_m, 1),
                                 "p": [round(c.x, 1), round(c.y, 1)], "zone": c.zone_id, "zh": c.name_zh,
                                 "en": c.name_en} for c in self.checkpoints],
                "segments": [{"id": s.id, "from": s.from_m, "to": s.to_m} for s in self.segments]}


def route_from_inventory(gdf, frame) -> Route:
    """The patrol route of the inventory, in local metres; chainages measured along the
    drawn line (the inventory's ``chainage_m`` attributes are checked against it)."""
    from shapely.geometry import LineString, Point

    rows = gdf[gdf["type"] == "patrol_route"]
    if rows.empty:
        raise PatrolError("the inventory has no patrol_route asset")
    r = rows.iloc[0]
    lon, lat = np.asarray(r.geometry.coords).T
    x, y = frame.to_xy(lon, lat)
    path = tuple(zip(np.round(x, 3).tolist(), np.round(y, 3).tolist()))
    line = LineString(path)
    raw = r["attrs"]                      # (not r.attrs: that is pandas' own metadata)
    attrs = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    cps = []
    for c in gdf[gdf["type"] == "checkpoint"].itertuples():
        a = json.loads(c.attrs) if isinstance(c.attrs, str) else dict(c.attrs or {})
        if a.get("checkpoint_id") not in attrs.get("checkpoints", ()):
            continue
        cx, cy = frame.to_xy(np.array([c.geometry.x]), np.array([c.geometry.y]))
        cps.append(Checkpoint(a["checkpoint_id"], c.asset_id, int(a["order"]), float(a["chainage_m"]),
                              float(cx[0]), float(cy[0]), c.zone_id, c.name_zh, c.name_en))
    cps.sort(key=lambda c: c.order)
    # the route doubles back on itself: a checkpoint's chainage says which pass it is on
    for c in cps:
        d = line.interpolate(c.chainage_m).distance(Point(c.x, c.y))
        if d > 15:
            raise PatrolError(f"checkpoint {c.id}: chainage {c.chainage_m} m lies {d:.0f} m from its position")
    cams = []
    for c in gdf[gdf["type"] == "cctv_camera"].itertuples():
        cx, cy = frame.to_xy(np.array([c.geometry.x]), np.array([c.geometry.y]))
        pt = Point(float(cx[0]), float(cy[0]))
        if line.distance(pt) <= SIGHT_M:
            cams.append((c.asset_id, round(float(line.project(pt)), 1)))
    return Route(r["asset_id"], r.name_zh, r.name_en, path, float(line.length), tuple(cps), tuple(sorted(cams,
                 key=lambda t: t[1])))


# --------------------------------------------------------------------------- coverage
def merge(intervals: Sequence[Sequence[float]], gap_m: float = 1.0) -> list[list[float]]:
    """The union of chainage intervals, sorted, touching ones joined."""
    iv = sorted([min(a, b), max(a, b)] for a, b in intervals)
    out: list[list[float]] = []
    for a, b in iv:
        if out and a <= out[-1][1] + gap_m:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def covers(union: Sequence[Sequence[float]], a: float, b: float, tol: float = TOLERANCE_M) -> bool:
    return any(lo <= a + tol and hi >= b - tol for lo, hi in union)


@dataclass(frozen=True)
class Coverage:
    segments: tuple[str, ...]
    checkpoints: tuple[str, ...]
    cameras: tuple[str, ...]
    walked_m: float


def coverage(route: Route, intervals: Sequence[Sequence[float]], stopped: Sequence[str]) -> Coverage:
    union = merge(intervals)
    segs = tuple(s.id for s in route.segments if covers(union, s.from_m, s.to_m))
    stopped = set(stopped)
    cps = tuple(c.id for c in route.checkpoints
                if c.id in stopped and covers(union, c.chainage_m, c.chainage_m))
    cams = tuple(dict.fromkeys(cid for cid, s in route.cameras if covers(union, s, s, tol=SIGHT_M)))
    return Coverage(segs, cps, cams, round(sum(b - a for a, b in union), 1))


def check_report(route: Route, intervals: Any, stopped: Any, anomalies: Any) -> tuple[list[list[float]], list[str],
                                                                                      list[str]]:
    """A phone's report, checked: intervals within the route, known checkpoints, short texts."""
    if not isinstance(intervals, list) or len(intervals) > MAX_INTERVALS:
        raise PatrolError(f"intervals: a list of at most {MAX_INTERVALS} [from_m, to_m] pairs")
    iv = []
    for i, pair in enumerate(intervals):
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in pair)):
            raise PatrolError(f"intervals[{i}]: a pair of numbers (metres along the route), not {pair!r}"[:200])
        a, b = float(pair[0]), float(pair[1])
        if not (-1.0 <= a <= route.length_m + 1.0 and -1.0 <= b <= route.length_m + 1.0):
            raise PatrolError(f"intervals[{i}]: {a:.0f}-{b:.0f} m is off the route (0-{route.length_m:.0f} m)")
        iv.append([max(0.0, min(a, b)), min(route.length_m, max(a, b))])
    if not isinstance(stopped, list) or len(stopped) > 100:
        raise PatrolError("checkpoints: a list of checkpoint ids")
    cps = []
    for c in stopped:
        if not isinstance(c, str):
            raise PatrolError("checkpoints: a list of checkpoint ids")
        cps.append(route.checkpoint(c).id)
    if not isinstance(anomalies, list) or len(anomalies) > 500:
        raise PatrolError("anomalies: a list of at most 500 ids")
    return iv, cps, [str(a)[:MAX_TEXT] for a in anomalies]


# --------------------------------------------------------------------------- the log
_SCHEMA = ("""CREATE TABLE IF NOT EXISTS patrols (
    patrol_id TEXT PRIMARY KEY, route_id TEXT NOT NULL, username TEXT NOT NULL, mode TEXT NOT NULL,
    started_at TEXT NOT NULL, updated_at TEXT NOT NULL, ended_at TEXT,
    intervals_json TEXT NOT NULL, checkpoints_json TEXT NOT NULL, anomalies_json TEXT NOT NULL)""",
           "CREATE INDEX IF NOT EXISTS patrols_started ON patrols (started_at)")
MODES = ("virtual", "foot")


@dataclass(frozen=True)
class PatrolRecord:
    patrol_id: str
    route_id: str
    username: str
    mode: str
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    intervals: tuple[tuple[float, float], ...]
    stopped: tuple[str, ...]
    anomalies: tuple[str, ...]
    coverage: Coverage = field(default=Coverage((), (), (), 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"patrol_id": self.patrol_id, "route_id": self.route_id, "username": self.username, "mode": self.mode,
                "started_at": self.started_at.isoformat(), "updated_at": self.updated_at.isoformat(),
                "ended_at": self.ended_at.isoformat() if self.ended_at else None,
                "duration_s": round(((self.ended_at or self.updated_at) - self.started_at).total_seconds(), 1),
                "segments": list(self.coverage.segments), "checkpoints": list(self.coverage.checkpoints),
                "cameras_seen": len(self.coverage.cameras), "anomalies_seen": list(self.anomalies),
                "walked_m": self.coverage.walked_m}


class PatrolStore:
    """The coverage log (see the module docstring)."""

    def __init__(self, path: str | Path, route: Route):
        self.route = route
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        for q in _SCHEMA:
            self._db.execute(q)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def _record(self, r: tuple) -> PatrolRecord:
        pid, rid, user, mode, st, up, en, iv, cps, an = r
        iv = tuple(tuple(x) for x in json.loads(iv))
        cps = tuple(json.loads(cps))
        return PatrolRecord(pid, rid, user, mode, datetime.fromisoformat(st), datetime.fromisoformat(up),
                            datetime.fromisoformat(en) if en else None, iv, cps, tuple(json.loads(an)),
                            coverage(self.route, iv, cps))

    def progress(self, patrol_id: str, *, username: str, now: datetime, intervals: Any, checkpoints: Any,
                 anomalies: Any = (), mode: str = "virtual", ended: bool = False) -> PatrolRecord:
        """Add a phone's report to patrol ``patrol_id`` (made on its first report).  Idempotent:
        the log keeps the union of what was reported; a finished patrol takes no more progress."""
        if not isinstance(patrol_id, str) or not 8 <= len(patrol_id) <= 80 or not patrol_id.isascii():
            raise PatrolError("patrol_id: the phone's id for this patrol (8-80 ASCII characters)")
        if mode not in MODES:
            raise PatrolError(f"mode: one of {', '.join(MODES)}")
        iv, cps, an = check_report(self.route, intervals, checkpoints, list(anomalies))
        if now.tzinfo is None:
            raise PatrolError("now: an aware time")
        now = now.astimezone(timezone.utc)
        with self._tx() as cur:
            row = cur.execute("SELECT * FROM patrols WHERE patrol_id = ?", (patrol_id,)).fetchone()
            if row is None:
                old_iv, old_cps, old_an, started, end = [], [], [], now, None
            else:
                if row[2] != username:
                    raise PatrolError(f"patrol {patrol_id} is {row[2]}'s, not {username}'s")
                old_iv, old_cps, old_an = json.loads(row[7]), json.loads(row[8]), json.loads(row[9])
                started, end = datetime.fromisoformat(row[4]), row[6]
                if end is not None:                       # a resent last report: nothing changes
                    return self._record(row)
            union = merge(old_iv + iv)
            cps_all = list(dict.fromkeys(old_cps + cps))
            an_all = list(dict.fromkeys(old_an + an))[:500]
            ended_at = now.isoformat() if ended else None
            cur.execute("INSERT INTO patrols VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(patrol_id) DO UPDATE SET "
                        "updated_at = excluded.updated_at, ended_at = excluded.ended_at, "
                        "intervals_json = excluded.intervals_json, checkpoints_json = excluded.checkpoints_json, "
                        "anomalies_json = excluded.anomalies_json",
                        (patrol_id, self.route.route_id, username, mode, started.isoformat(), now.isoformat(),
                         ended_at, json.dumps(union), json.dumps(cps_all), json.dumps(an_all, ensure_ascii=False)))
            row = cur.execute("SELECT * FROM patrols WHERE patrol_id = ?", (patrol_id,)).fetchone()
        return self._record(row)

    def get(self, patrol_id: str) -> PatrolRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM patrols WHERE patrol_id = ?", (patrol_id,)).fetchone()
        return None if row is None else self._record(row)

    def day(self, day: date) -> list[PatrolRecord]:
        """The patrols started on local day ``day``, oldest first."""
        lo = datetime(day.year, day.month, day.day, tzinfo=LOCAL).astimezone(timezone.utc)
        hi = datetime.fromordinal(day.toordinal() + 1).replace(tzinfo=LOCAL).astimezone(timezone.utc)
        with self._lock:              # times are stored as UTC ISO text: a range on the index
            rows = self._db.execute("SELECT * FROM patrols WHERE started_at >= ? AND started_at < ? "
                                    "ORDER BY started_at", (lo.isoformat(), hi.isoformat())).fetchall()
        return [self._record(r) for r in rows]

    def gaps(self, day: date) -> list[Segment]:
        """The segments no patrol of ``day`` covered."""
        return self.uncovered(self.day(day))

    def since(self, t0: datetime) -> list[PatrolRecord]:
        """The patrols active at or after ``t0`` (started, reported or ended since), oldest first:
        one that began before ``t0`` and is still walking is in."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM patrols WHERE COALESCE(ended_at, updated_at) >= ? "
                                    "ORDER BY started_at", (t0.astimezone(timezone.utc).isoformat(),)).fetchall()
        return [self._record(r) for r in rows]

    def uncovered(self, recs: Sequence[PatrolRecord]) -> list[Segment]:
        """The route segments none of ``recs`` covered."""
        done = {s for p in recs for s in p.coverage.segments}
        return [s for s in self.route.segments if s.id not in done]


__all__ = ["Checkpoint", "Coverage", "PatrolError", "PatrolRecord", "PatrolStore", "Route", "Segment", "coverage",
           "merge", "route_from_inventory"]
