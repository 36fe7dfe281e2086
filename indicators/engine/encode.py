"""Feed tables to dense columns: the only place where strings meet the engine.

:meth:`Encoder.encode` turns one Arrow table of a feed kind (the columns of
``SCHEMAS[kind]``; extra columns such as a recording's ``arrival_time`` are
ignored) into a dict of numpy arrays of equal length:

* ``t`` event time (int64 epoch ms), ``h`` the event-id hash (uint64);
* dimension codes as intp (-1 = not in the inventory / vocabulary):
  ``zone``, ``gate``, ``camera``, ``algorithm``, ``asset``, ``metric``,
  ``route``, ``stop``, ``vehicle``, ``station``, ``segment``, ``wstation``,
  ``signal``, ``case``, ``category``, ``status``, ``staff``;
* values as float64 on the 2^-16 grid (NaN = null).

Attribution rules (documented in docs/catalog.md, "Feeds"):
a gate record belongs to the gate's inventory zone (an unknown gate to its
``zone_id``); a video event to its ``zone_id`` when that is a known zone,
else to its camera's zone; a case's departments become a bit mask over the
inventory's departments; a warning that is ``cancelled`` has level 0.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from indicators.catalog.expand import Dimensions
from indicators.catalog.model import STAFF_STATUSES
from indicators.feeds.schemas import FACILITY_METRICS, WARNING_COLOURS

from .kernels import FEW, Codec, hash_strings, one_chunk, quantise, to_float, to_ms, valid_mask

__all__ = ["Encoder", "CASE_STATUSES", "CLOSED", "NO_EXPIRY", "DYNAMIC"]

CASE_STATUSES = ("open", "dispatched", "handling", "verifying", "closed")
CLOSED = CASE_STATUSES.index("closed")
NO_EXPIRY = np.iinfo(np.int64).max
DYNAMIC = ("vehicle", "wstation", "case", "staff")     # codecs that grow with the feeds
_SALT = {k: i * 0x1000193 + 7 for i, k in enumerate(
    ("crowd", "gate", "video", "facility", "bus", "station", "traffic", "weather", "warning", "case", "staff"))}


class Encoder:
    """Dictionary-encodes feed tables against the inventory's dimensions."""

    def __init__(self, dims: Dimensions) -> None:
        self.dims = dims
        m = dims.members
        self.codecs: dict[str, Codec] = {
            "zone": Codec(m["zone"]), "gate": Codec(m["gate"]), "camera": Codec(m["camera"]),
            "algorithm": Codec(m["algorithm"]), "asset": Codec(m["asset"]), "metric": Codec(tuple(FACILITY_METRICS)),
            "route": Codec(m["route"]), "stop": Codec(m["stop"]), "station": Codec(m["station"]),
            "segment": Codec(m["segment"]), "signal": Codec(m["signal"]), "colour": Codec(WARNING_COLOURS),
            "category": Codec(m["category"]), "case_status": Codec(CASE_STATUSES),
            "warning_status": Codec(("cancelled",)),
            "staff_status": Codec(STAFF_STATUSES),
            "department": Codec(m["department"], aliases=dims.department_aliases),
            "vehicle": Codec(dynamic=True), "wstation": Codec(dynamic=True), "case": Codec(dynamic=True),
            "staff": Codec(dynamic=True),
        }
        if len(m["department"]) > 63:
            raise ValueError("more than 63 departments: the case department bit mask needs widening")
        zone_code = self.codecs["zone"].index
        asset_code = self.codecs["asset"].index

        def zone_of(ids: tuple[str, ...]) -> np.ndarray:
            return np.array([zone_code.get(dims.asset_zone[asset_code[a]], -1) for a in ids] + [-1], dtype=np.intp)
        # per code of gate / camera: the zone code (index -1 -> the trailing -1)
        self.gate_zone = zone_of(m["gate"])
        self.camera_zone = zone_of(m["camera"])

    def encode(self, kind: str, table: pa.Table) -> dict[str, np.ndarray]:
        cols = {"t": to_ms(table.column("event_time")),
                "h": hash_strings(table.column("event_id"), _SALT[kind])}
        getattr(self, f"_{kind}")(table, cols)
        return cols

    # ----------------------------------------------------------- per feed
    def _c(self, name: str, table: pa.Table, column: str) -> np.ndarray:
        return self.codecs[name].encode(table.column(column))

    @staticmethod
    def _v(table: pa.Table, column: str) -> np.ndarray:
        return quantise(to_float(table.column(column)))

    def _crowd(self, t: pa.Table, out: dict) -> None:
        out["zone"] = self._c("zone", t, "zone_id")
        out["total"] = ~valid_mask(t.column("cell_id"))
        out["count"] = self._v(t, "count")

    def _gate(self, t: pa.Table, out: dict) -> None:
        gate = self._c("gate", t, "gate_id")
        out["gate"] = gate
        out["zone"] = np.where(gate >= 0, self.gate_zone[gate], self._c("zone", t, "zone_id"))
        out["entries"] = self._v(t, "entries")
        out["exits"] = self._v(t, "exits")
        out["net"] = out["entries"] - out["exits"]

    def _video(self, t: pa.Table, out: dict) -> None:
        cam = self._c("camera", t, "camera_id")
        own = self._c("zone", t, "zone_id")
        out["camera"] = cam
        out["zone"] = np.where(own >= 0, own, self.camera_zone[cam])
        out["algorithm"] = self._c("algorithm", t, "algorithm")
        out["events"] = np.ones(t.num_rows)
        out["object_count"] = self._v(t, "object_count")

    def _facility(self, t: pa.Table, out: dict) -> None:
        out["asset"] = self._c("asset", t, "asset_id")
        out["metric"] = self._c("metric", t, "metric")
        out["value"] = self._v(t, "value")

    def _bus(self, t: pa.Table, out: dict) -> None:
        out["route"] = self._c("route", t, "route_id")
        out["stop"] = self._c("stop", t, "stop_id")
        out["vehicle"] = self._c("vehicle", t, "vehicle_id")
        for c in ("delay_s", "occupancy_pct", "speed_mps"):
            out[c] = self._v(t, c)
        out["events"] = np.ones(t.num_rows)

    def _station(self, t: pa.Table, out: dict) -> None:
        out["station"] = self._c("station", t, "station_id")
        for c in ("entries", "exits", "platform_persons", "control_level"):
            out[c] = self._v(t, c)

    def _traffic(self, t: pa.Table, out: dict) -> None:
        out["segment"] = self._c("segment", t, "segment_id")
        for c in ("speed_kmh", "flow_vph", "occupancy_pct"):
            out[c] = self._v(t, c)

    def _weather(self, t: pa.Table, out: dict) -> None:
        out["wstation"] = self._c("wstation", t, "station_id")
        for c in ("temperature_c", "rain_1h_mm", "wind_speed_ms", "gust_ms", "humidity_pct", "visibility_m"):
            out[c] = self._v(t, c)

    def _warning(self, t: pa.Table, out: dict) -> None:
        out["signal"] = self._c("signal", t, "signal")
        colour = self._c("colour", t, "colour")
        cancelled = self._c("warning_status", t, "status") == 0
        out["level"] = np.where(cancelled | (colour < 0), 0, colour + 1).astype(np.float64)
        exp = t.column("expires")
        if exp.null_count:
            out["expires"] = np.where(valid_mask(exp), to_ms(exp.fill_null(0)), NO_EXPIRY)
        else:
            out["expires"] = to_ms(exp)

    def _case(self, t: pa.Table, out: dict) -> None:
        out["case"] = self._c("case", t, "case_id")
        out["category"] = self._c("category", t, "category")
        out["zone"] = self._c("zone", t, "zone_id")
        out["status"] = self._c("case_status", t, "status")
        deps = one_chunk(t.column("departments"))
        n = t.num_rows
        mask = np.zeros(n, dtype=np.uint64)
        if n <= FEW:                                     # a few cases: their lists as Python lists
            lists = deps.to_pylist()
            ndept = np.array([len(x) if x is not None else 0 for x in lists], dtype=np.int64)
            flat = [d for x in lists if x for d in x]
            code = self.codecs["department"].codes_of(flat) if flat else None
            parent = np.repeat(np.arange(n), ndept)
        else:
            ndept = np.asarray(pc.fill_null(pc.list_value_length(deps), 0).to_numpy(zero_copy_only=False),
                               dtype=np.int64)
            flat = pc.list_flatten(deps)
            code = self.codecs["department"].encode(flat) if len(flat) else None
            parent = np.asarray(pc.list_parent_indices(deps).to_numpy(zero_copy_only=False), dtype=np.intp) \
                if code is not None else None
        if code is not None:
            ok = code >= 0
            np.bitwise_or.at(mask, parent[ok], np.left_shift(np.uint64(1), code[ok].astype(np.uint64)))
        out["ndept"] = ndept
        out["depts"] = mask

    def _staff(self, t: pa.Table, out: dict) -> None:
        out["staff"] = self._c("staff", t, "staff_id")
        st = self._c("staff_status", t, "status")
        out["status"] = np.where(st >= 0, st, np.nan).astype(np.float64)
        out["lon"] = to_float(t.column("lon"))
        out["lat"] = to_float(t.column("lat"))

    # ------------------------------------------------------------ state
    def state(self) -> dict[str, np.ndarray]:
        return {f"codec.{k}": self.codecs[k].state() for k in DYNAMIC}

    def load(self, st: dict[str, np.ndarray]) -> None:
        for k in DYNAMIC:
            self.codecs[k].load(st[f"codec.{k}"])


# the column of each feed whose code must be known for the record to count at all
PRIMARY = {"crowd": "zone", "gate": "zone", "video": "zone", "facility": "asset", "bus": "route",
           "station": "station", "traffic": "segment", "weather": "wstation", "warning": "signal",
           "case": "case", "staff": "staff"}
