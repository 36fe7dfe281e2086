"""Static GTFS: the ids a GTFS-Realtime feed may name.

A GTFS-Realtime feed refers to the agency's static GTFS schedule by id: a trip
update names a ``trip_id``, a vehicle a ``route_id``, a stop-time update a
``stop_id``.  An id the schedule does not have is a broken reference (the
GTFS-Realtime reference validator reports it as an error), so when a static
GTFS is loaded the GTFS-RT adapter checks every id against it.

:func:`load_static` reads a GTFS zip with the :mod:`csv` module and keeps only
what the checks and the control room need: the agencies' names, the route ids
with their short and long names, the trip ids, the stop ids and the service
date range.  ``stop_times.txt`` is the largest file of a feed; only its header
is read.

Required files (GTFS reference): ``agency.txt``, ``stops.txt``,
``routes.txt``, ``trips.txt``, ``stop_times.txt`` and ``calendar.txt`` or
``calendar_dates.txt`` (either, or both).  They may sit at the top of the zip
or together in one sub-folder (zips made by "compress folder" in a file
manager).  A zip that lacks a required file or column is refused with a
:class:`GtfsError` that lists every problem at once.
"""
from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path, PurePosixPath

CALENDARS = ("calendar.txt", "calendar_dates.txt")
REQUIRED = ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt")
# file -> columns the twin reads and GTFS requires
COLUMNS = {
    "agency.txt": ("agency_name",),
    "stops.txt": ("stop_id",),
    "routes.txt": ("route_id",),
    "trips.txt": ("route_id", "service_id", "trip_id"),
    "stop_times.txt": ("trip_id",),
    "calendar.txt": ("service_id", "start_date", "end_date"),
    "calendar_dates.txt": ("service_id", "date", "exception_type"),
}
STORE_VERSION = 1


class GtfsError(ValueError):
    """A static GTFS that cannot be used; ``problems`` lists every reason."""

    def __init__(self, path, problems: list[str]):
        self.problems = list(problems)
        super().__init__(f"{path} is not a usable static GTFS: " + "; ".join(self.problems))


@dataclass(frozen=True)
class StaticGtfs:
    """The ids of one static GTFS feed."""

    source: str  # the zip it was read from
    agencies: tuple[str, ...]
    routes: dict[str, tuple[str, str]]  # route_id -> (route_short_name, route_long_name)
    trip_ids: frozenset[str]
    stop_ids: frozenset[str]
    service_start: date | None = None
    service_end: date | None = None
    loaded_at: str = field(default="", compare=False)

    @property
    def route_ids(self) -> frozenset[str]:
        return frozenset(self.routes)

    def route_label(self, route_id: str) -> str:
        """``route 10 (Airport - Bullfrog)`` style text for a route id."""
        short, long_ = self.routes.get(route_id, ("", ""))
        name = " ".join(n for n in (short if short != route_id else "", long_) if n)
        return f"route {route_id} ({name})" if name else f"route {route_id}"

    def summary(self) -> dict:
        """What ``scenic-twin gtfs load`` prints."""
        return {"source": self.source, "agencies": list(self.agencies), "routes": len(self.routes),
                "trips": len(self.trip_ids), "stops": len(self.stop_ids),
                "service_start": self.service_start.isoformat() if self.service_start else None,
                "service_end": self.service_end.isoformat() if self.service_end else None}

    # --- the stored form (var/feeds/gtfs_static.json) -------------------------
    def to_json(self) -> dict:
        return {"version": STORE_VERSION, "loaded_at": self.loaded_at, **self.summary(),
                "route_names": {k: list(v) for k, v in sorted(self.routes.items())},
                "trip_ids": sorted(self.trip_ids), "stop_ids": sorted(self.stop_ids)}

    @classmethod
    def from_json(cls, doc: dict) -> "StaticGtfs":
        if not isinstance(doc, dict) or doc.get("version") != STORE_VERSION:
            raise ValueError(f"not a stored static GTFS of version {STORE_VERSION}")
        day = lambda s: date.fromisoformat(s) if s else None  # noqa: E731
        return cls(source=doc["source"], agencies=tuple(doc["agencies"]),
                   routes={k: (v[0], v[1]) for k, v in doc["route_names"].items()},
                   trip_ids=frozenset(doc["trip_ids"]), stop_ids=frozenset(doc["stop_ids"]),
                   service_start=day(doc.get("service_start")), service_end=day(doc.get("service_end")),
                   loaded_at=doc.get("loaded_at", ""))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)


def read_stored(path: Path) -> StaticGtfs:
    """The static GTFS stored by ``scenic-twin gtfs load``; ValueError when unreadable."""
    try:
        return StaticGtfs.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, KeyError, TypeError, IndexError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} cannot be read as a stored static GTFS ({exc})") from None


# --------------------------------------------------------------------------- reading
def load_static(path) -> StaticGtfs:
    """Read a GTFS zip; raise :class:`GtfsError` listing every problem."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise GtfsError(path, [f"it cannot be opened as a ZIP archive ({exc})"]) from None
    with zf:
        folder, missing = _folder(zf.namelist())
        if missing:
            raise GtfsError(path, [f"required file(s) missing: {', '.join(missing)}"
                                   + (f" (looked in '{folder}')" if folder else "")])
        tables, problems = {}, []
        for name in REQUIRED + CALENDARS:
            member = folder + name
            if member in zf.namelist():
                tables[name] = _read(zf, member, name, problems)
    dates = _service_dates(tables.get("calendar.txt", []), tables.get("calendar_dates.txt", []), problems)
    if problems:
        raise GtfsError(path, problems)
    return _build(path, tables, dates)


def _folder(names: list[str]) -> tuple[str, list[str]]:
    """The folder of the zip holding every required file ('' is the top) and,
    when none does, the best candidate with what it lacks."""
    files: dict[str, set[str]] = {}
    for n in names:
        p = PurePosixPath(n)
        if n.endswith("/") or "__MACOSX" in p.parts:
            continue
        folder = "" if len(p.parts) == 1 else str(p.parent) + "/"
        files.setdefault(folder, set()).add(p.name)
    best = ("", _missing(files.get("", set())))
    for folder in sorted(files, key=lambda f: (f.count("/"), f)):
        missing = _missing(files[folder])
        if not missing:
            return folder, []
        if len(missing) < len(best[1]):
            best = (folder, missing)
    return best


def _missing(present: set[str]) -> list[str]:
    out = [f for f in REQUIRED if f not in present]
    if not any(f in present for f in CALENDARS):
        out.append(" or ".join(CALENDARS))
    return out


def _read(zf: zipfile.ZipFile, member: str, name: str, problems: list[str]) -> list[dict]:
    """Rows of one file, ids stripped; ``stop_times.txt``: its header only."""
    try:
        with zf.open(member) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.reader(text)
            header = [h.strip() for h in next(reader, [])]
            lacking = [c for c in COLUMNS[name] if c not in header]
            if lacking:
                problems.append(f"{name} has no column {', '.join(lacking)}")
                return []
            if name == "stop_times.txt":
                return []
            return [dict(zip(header, (v.strip() for v in row))) for row in reader if any(row)]
    except UnicodeDecodeError as exc:
        problems.append(f"{name} is not UTF-8 text (byte {exc.start})")
    except (csv.Error, zipfile.BadZipFile, OSError) as exc:
        problems.append(f"{name} cannot be read ({exc})")
    return []


def _build(path: Path, t: dict[str, list[dict]], dates: list[date]) -> StaticGtfs:
    routes = {r["route_id"]: (r.get("route_short_name", ""), r.get("route_long_name", ""))
              for r in t["routes.txt"] if r.get("route_id")}
    return StaticGtfs(
        source=str(path), agencies=tuple(a.get("agency_name", "") for a in t["agency.txt"]),
        routes=routes, trip_ids=frozenset(r["trip_id"] for r in t["trips.txt"] if r.get("trip_id")),
        stop_ids=frozenset(r["stop_id"] for r in t["stops.txt"] if r.get("stop_id")),
        service_start=min(dates) if dates else None, service_end=max(dates) if dates else None,
        loaded_at=datetime.now().astimezone().isoformat(timespec="seconds"))


def _service_dates(calendar: list[dict], exceptions: list[dict], problems: list[str]) -> list[date]:
    """Start and end of every calendar period plus every added service day
    (exception_type 1); a removed day (2) does not widen the range."""
    out = []
    for i, row in enumerate(calendar, start=2):
        for col in ("start_date", "end_date"):
            out.append(_day(row.get(col, ""), f"calendar.txt line {i} {col}", problems))
    for i, row in enumerate(exceptions, start=2):
        if row.get("exception_type") == "1":
            out.append(_day(row.get("date", ""), f"calendar_dates.txt line {i} date", problems))
    return [d for d in out if d is not None]


def _day(text: str, where: str, problems: list[str]) -> date | None:
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        problems.append(f"{where} '{text}' is not a date written YYYYMMDD")
        return None
