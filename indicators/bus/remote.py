"""Several web workers for one area: the live state and the writes over NATS.

One process per area runs the service (``scenic-twin run --bus``: ingest, engine, alerts).  Web
workers (``scenic-twin web --bus``) only serve screens; behind a load balancer a wall, a console
or a patrol phone may be connected to any of them, and each must see the same pushes and be able
to act.

    front (Service) ── ServiceHost ──▶ scenic.<area>.snapshot       every published snapshot
                                  ◀──▶ scenic.<area>.service        request/reply: the writes and
                                                                    the reads a worker cannot do alone
    web worker ── RemoteService ──▶ its SnapshotHub ──▶ its screens (the same push code as the front)

A web worker checks the caller's role in its own callbacks (the same app code as the front) before
it forwards anything; the front runs the forwarded call under its service lock and audits it, so a
write is one write whichever worker took it.  Sessions live in the shared store (PostgreSQL), so a
login on one worker holds on the others.

On the wire: snapshots and calls are pickled and zlib-compressed (a snapshot is ~0.75 MB of Python
objects, ~60 KB compressed, ~10 ms to build) and read back with an unpickler that only constructs
this project's classes and a few plain types - anything else (a function, a module attribute) is
refused - so a message on the bus cannot run code in a worker.  The bus itself is authenticated
(deploy/).
"""
from __future__ import annotations

import asyncio
import dataclasses
import enum
import io
import logging
import pickle
import threading
import time
import zlib
from types import SimpleNamespace
from typing import Any, Callable
from zoneinfo import ZoneInfo

from . import names
from .jetstream import Bus

log = logging.getLogger(__name__)

MAX_UNPACKED = 64 * 1024 * 1024        # a message that inflates beyond this is refused
CALL_TIMEOUT_S = 30.0                  # a write (the front may be busy saving a threshold version)
READ_TIMEOUT_S = 5.0                   # a read a page waits for (a view built once per snapshot)
_READS = frozenset({"patrols", "asset_readings", "readiness", "threshold_search", "threshold_describe",
                    "threshold_history", "threshold_diff", "photo_get"})

# what a message on the bus may construct: this project's dataclasses and enums (building one runs
# no code of ours beyond field assignment) and a few standard types
_SAFE_PREFIXES = ("indicators.",)
_SAFE = {("datetime", n) for n in ("date", "datetime", "time", "timedelta", "timezone")} | {
    ("builtins", n) for n in ("set", "frozenset", "tuple", "list", "dict", "bytearray", "complex", "slice")} | {
    ("collections", "OrderedDict"), ("collections", "deque"), ("collections", "defaultdict"),
    ("zoneinfo", "ZoneInfo")}

# what a web worker may ask the front to do (the service's actions and the reads backed by its state)
FORWARDED = frozenset({
    "acknowledge", "assign", "escalate", "silence", "unsilence", "case_from_alert", "case_step",
    "plan_step", "close_plan", "report", "patrol_case_step", "patrol_progress", "patrols",
    "save_threshold", "rollback_thresholds", "threshold_search", "threshold_describe", "threshold_history",
    "threshold_diff", "backtest_threshold", "asset_readings", "readiness", "photo_put", "photo_get"})


class RefusedMessage(ValueError):
    """A message on the bus that is not what a front or a worker sends."""


class _Pickler(pickle.Pickler):
    dispatch_table = {ZoneInfo: lambda z: (ZoneInfo, (z.key,))}    # not ZoneInfo._unpickle via getattr


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE or (module.startswith(_SAFE_PREFIXES) and not name.startswith("_")):
            obj = super().find_class(module, name)
            if module.startswith(_SAFE_PREFIXES) and not (
                    isinstance(obj, type) and (dataclasses.is_dataclass(obj) or issubclass(obj, enum.Enum))):
                raise RefusedMessage(f"{module}.{name} is not a dataclass or an enum")  # no functions, no stores
            return obj
        raise RefusedMessage(f"a message on the bus may not construct {module}.{name}")


def dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=5).dump(obj)
    return zlib.compress(buf.getvalue(), 1)


def loads(data: bytes) -> Any:
    """What :func:`dumps` made; anything else raises :class:`RefusedMessage` with the reason."""
    try:
        d = zlib.decompressobj()
        raw = d.decompress(data, MAX_UNPACKED)
        if d.unconsumed_tail:
            raise RefusedMessage(f"message inflates beyond {MAX_UNPACKED} bytes")
        return _Unpickler(io.BytesIO(raw)).load()
    except RefusedMessage:
        raise
    except Exception as e:                          # not zlib, not a pickle, cut short …
        raise RefusedMessage(f"unreadable message ({type(e).__name__}: {str(e)[:200]})") from e


# ------------------------------------------------------------------ the front's side
class ServiceHost:
    """Publishes the service's snapshots and answers forwarded calls (run in the front)."""

    def __init__(self, service, bus: Bus, area: str) -> None:
        self.service = service
        self.bus = bus
        self.area = names.check_area(area)
        self.published = 0
        self.calls = 0
        self._latest: bytes | None = None
        self._pending: asyncio.Future | None = None
        self._subs = bus.call(self._subscribe())

    async def _subscribe(self):
        nc = self.bus.nc
        loop = asyncio.get_running_loop()

        async def on_call(msg):
            reply = await loop.run_in_executor(None, self._answer, msg.data)
            await msg.respond(reply)

        async def on_get(msg):
            await msg.respond(self._latest or dumps(None))
        # a queue group: were two fronts started for one area by mistake, each call runs once
        return [await nc.subscribe(names.service_subject(self.area), queue="front", cb=on_call),
                await nc.subscribe(names.snapshot_get_subject(self.area), queue="front", cb=on_get)]

    def _answer(self, data: bytes) -> bytes:
        from indicators.alerts.store import VersionConflict
        from indicators.service import ActionError
        try:
            method, args, kwargs = loads(data)
            if method not in FORWARDED:
                raise RefusedMessage(f"{method!r} cannot be called over the bus")
            if method == "photo_put":
                result = self.service.photos.put(*args)
            elif method == "photo_get":
                result = self.service.photos.get(*args)
            else:
                result = getattr(self.service, method)(*args, **kwargs)
            self.calls += 1
            return dumps(("ok", result))
        except (ActionError, VersionConflict, RefusedMessage, ValueError, KeyError, FileNotFoundError) as e:
            return dumps(("error", type(e).__name__, str(e)))
        except Exception as e:                      # a bug: logged here, an error there
            log.exception("forwarded call failed")
            return dumps(("error", "RuntimeError", f"the front failed: {type(e).__name__}: {e}"))

    def publish(self, snap) -> None:
        """Called with every snapshot the service publishes (from its threads): send the newest;
        one still being sent is not queued behind (the next one supersedes it)."""
        data = dumps(snap)
        self._latest = data
        subject = names.snapshot_subject(self.area)

        async def send():
            await self.bus.nc.publish(subject, data)
        try:
            asyncio.run_coroutine_threadsafe(send(), self.bus._loop)
            self.published += 1
        except RuntimeError:                         # the bus is closing
            pass

    def close(self) -> None:
        async def unsub():
            for s in self._subs:
                await s.unsubscribe()
        try:
            self.bus.call(unsub(), timeout=5)
        except Exception:
            log.debug("unsubscribe failed", exc_info=True)


# ------------------------------------------------------------------ the web worker's side
class _RemotePhotos:
    def __init__(self, remote: "RemoteService") -> None:
        self._remote = remote

    @staticmethod
    def valid_name(sha: object) -> bool:
        from indicators.photos import PhotoStore
        return PhotoStore.valid_name(sha)

    def put(self, data: bytes) -> str:
        return self._remote._call("photo_put", bytes(data))

    def get(self, sha: str) -> bytes:
        return self._remote._call("photo_get", sha)


class RemoteService:
    """What the dashboard needs of a service, in a web worker: the front's snapshots into ``publish``
    (a SnapshotHub's), the writes and state reads forwarded to the front."""

    def __init__(self, bus: Bus, area: str, publish: Callable[[Any], Any], *, inventory=None) -> None:
        from twin_assets import inventory as inv

        from indicators.alerts import routing
        from indicators.alerts.runtime import load_config
        from indicators.catalog import load_catalog
        from indicators.patrols import route_from_inventory
        self.bus = bus
        self.area = names.check_area(area)
        self._publish = publish
        self.inventory = inv.load() if inventory is None else inventory
        self.catalog = load_catalog(inventory=self.inventory)
        self.route = route_from_inventory(self.inventory, inv.frame())
        places = routing.places_from_inventory(self.inventory, inv.frame())
        cfg = load_config(zones=list(places.zones))
        self.alerts = SimpleNamespace(case_cfg=cfg.cases, plan_defs=dict(cfg.plans),
                                      compound=list(cfg.compound), places=places)
        self.photos = _RemotePhotos(self)
        self.received = 0
        self.refused = 0
        self.last_received: float | None = None
        self.latest_version = -1
        self._lock = threading.Lock()
        self._sub = None

    def start(self) -> None:
        """Subscribe to the front's snapshots, then ask for its current one (a screen connected
        before the next step sees the state at once)."""
        async def go():
            async def on_snapshot(msg):
                self._take(msg.data)
            self._sub = await self.bus.nc.subscribe(names.snapshot_subject(self.area), cb=on_snapshot)
        self.bus.call(go())
        try:
            msg = self.bus.call(self.bus.nc.request(names.snapshot_get_subject(self.area), b"", timeout=10), 15)
            self._take(msg.data)
        except Exception as e:
            log.warning("no current snapshot from the front of %s yet (%s); waiting for its next", self.area, e)

    def _take(self, data: bytes) -> None:
        try:
            snap = loads(data)
        except Exception as e:
            self.refused += 1
            log.error("a snapshot message was refused: %s", e)
            return
        if snap is None:
            return
        with self._lock:
            if snap.version <= self.latest_version:       # an older one overtaken on the way
                return
            self.latest_version = snap.version
        self.received += 1
        self.last_received = time.monotonic()
        self._publish(snap)

    def _call(self, method: str, *args, **kwargs):
        from indicators.alerts.store import VersionConflict
        from indicators.service import ActionError
        if method not in FORWARDED:
            raise AttributeError(method)
        wait = READ_TIMEOUT_S if method in _READS else CALL_TIMEOUT_S
        try:
            msg = self.bus.call(self.bus.nc.request(names.service_subject(self.area), dumps((method, args, kwargs)),
                                                    timeout=wait), wait + 5)
        except Exception as e:
            raise ActionError(f"the area's front did not answer ({type(e).__name__}); nothing was changed "
                              "- try again in a moment") from e
        answer = loads(msg.data)
        if answer[0] == "ok":
            return answer[1]
        kind, text = answer[1], answer[2]
        errors = {"ActionError": ActionError, "VersionConflict": VersionConflict, "KeyError": KeyError,
                  "FileNotFoundError": FileNotFoundError}
        raise errors.get(kind, ValueError)(text)

    def __getattr__(self, name: str):
        if name in FORWARDED:
            return lambda *a, **kw: self._call(name, *a, **kw)
        raise AttributeError(name)

    def readiness(self) -> dict[str, Any]:
        """The front's readiness, with this worker's link to it."""
        age = None if self.last_received is None else time.monotonic() - self.last_received
        link = {"ok": age is not None and age < 30,
                "reason": "" if age is not None and age < 30 else
                ("no snapshot from the front yet" if age is None else f"no snapshot from the front for {age:.0f} s")}
        try:
            r = self._call("readiness")
        except Exception as e:
            return {"ready": False, "components": {"front_link": link, "front": {"ok": False, "reason": str(e)}},
                    "feeds": {}, "recovered_at_start": [], "stale_feeds": []}
        r["components"]["front_link"] = link
        r["ready"] = bool(r.get("ready")) and link["ok"]
        return r

    def start_threads(self) -> None:      # the front runs the service; a web worker has nothing to run
        pass

    def stop(self) -> None:
        if self._sub is not None:
            try:
                self.bus.call(self._sub.unsubscribe(), timeout=5)
            except Exception:
                log.debug("unsubscribe failed", exc_info=True)
