"""Engine workers: each owns some scenic areas, reads their feed streams with a durable consumer,
runs one indicator engine per area and publishes every computed tick.

Same values on every run
    A worker applies its area's messages in stream order and computes the ticks the event-time
    watermark allows after each message - never on a wall-clock timer - so its ticks are a function
    of the stream alone.  The checkpoint (the engine's whole state and the stream sequence it
    covers, in the JetStream object store) lets a restarted worker, on any machine, go on from
    there: it re-creates its durable consumer at the next sequence, skips what the checkpoint
    covers, and recomputes exactly the ticks it had published after the checkpoint.  Those carry
    the same ``Nats-Msg-Id`` (area and tick time), so the values stream stores each tick once
    within the duplicate window; a reader also drops a tick not newer than the last it applied.

Who owns which area
    Configuration, not an election: ``--area`` (or ``SCENIC_TWIN_AREAS``), or the worker's ordinal
    under ``SCENIC_TWIN_AREA_GROUPS`` (a StatefulSet pod's ordinal, a systemd template instance).
    The orchestrator runs at most one worker per ordinal and restarts it; the restarted worker takes
    its areas back from their checkpoints.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from . import names
from .jetstream import Bus, table_bytes, table_of

log = logging.getLogger(__name__)

VALUES_SCHEMA = pa.schema([("index", pa.int32()), ("value", pa.float64()), ("quality", pa.int8())])


# ------------------------------------------------------------------ areas
@dataclass(frozen=True)
class Area:
    """A scenic area of the platform: its id, asset inventory and catalog instance."""

    id: str
    inventory: Any
    catalog: Any


@lru_cache(maxsize=1)
def _home_inventory():
    from twin_assets import inventory as inv
    return inv.load()


def known_area(area_id: str) -> bool:
    """The Canton Tower area, and its synthetic copies ``canton-tower-copy-N`` (same assets and
    indicators, their own streams, checkpoints and values) for tests and benchmarks of a platform
    with several areas."""
    a = names.check_area(area_id)
    if a == names.HOME_AREA:
        return True
    prefix = names.HOME_AREA + "-copy-"
    return a.startswith(prefix) and a[len(prefix):].isdigit()


def load_area(area_id: str) -> Area:
    if not known_area(area_id):
        raise ValueError(f"unknown scenic area {area_id!r}: this platform has {names.HOME_AREA} and its "
                         f"synthetic copies {names.HOME_AREA}-copy-N")
    from indicators.catalog import load_catalog
    gdf = _home_inventory()
    return Area(area_id, gdf, load_catalog(inventory=gdf))


# ------------------------------------------------------------------ values on the bus
def values_message(area: str, tick) -> tuple[bytes, dict[str, str]]:
    """One tick as the values stream holds it: the indicators that changed (index into the catalog,
    value, quality) and the tick time; its message id makes a re-published tick a duplicate."""
    idx = np.asarray(tick.changed, dtype=np.int32)
    t = pa.table({"index": idx, "value": tick.values[idx].astype(np.float64),
                  "quality": tick.quality[idx].astype(np.int8)}, schema=VALUES_SCHEMA)
    t = t.replace_schema_metadata({"area": area, "time_ms": str(tick.time_ms)})
    return table_bytes(t), {"Nats-Msg-Id": f"{area}:{tick.time_ms}", "Scenic-Tick": str(tick.time_ms)}


class LiveValues:
    """Values of one area rebuilt from its values stream (what a web worker shows)."""

    def __init__(self, n: int) -> None:
        self.values = np.full(n, np.nan)
        self.quality = np.full(n, -1, dtype=np.int8)
        self.time_ms: int | None = None
        self.applied = 0            # ticks applied
        self.stale = 0              # ticks dropped as not newer than the last (re-published after a restart)

    def apply(self, data: bytes) -> bool:
        t = table_of(data)
        tm = int(t.schema.metadata[b"time_ms"])
        if self.time_ms is not None and tm <= self.time_ms:
            self.stale += 1
            return False
        idx = t.column("index").to_numpy()
        self.values[idx] = t.column("value").to_numpy(zero_copy_only=False)
        self.quality[idx] = t.column("quality").to_numpy()
        self.time_ms = tm
        self.applied += 1
        return True


def read_values(bus: Bus, area: str, n: int, *, on_tick: Callable[[LiveValues], None] | None = None) -> LiveValues:
    """Replay ``area``'s whole values stream into a :class:`LiveValues` (``on_tick`` after each tick)."""
    from nats.js import api
    import nats.errors
    live = LiveValues(n)
    stream = names.values_stream(area)
    end = bus.last_seq(stream)
    if end == 0:
        return live
    cfg = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL, ack_policy=api.AckPolicy.NONE,
                             inactive_threshold=60.0)
    sub = bus.call(bus.js.pull_subscribe(names.values_subject(area), durable=None, stream=stream, config=cfg))
    seq = 0
    try:
        while seq < end:
            try:
                msgs = bus.call(sub.fetch(512, timeout=5))
            except nats.errors.TimeoutError:
                break
            for m in msgs:
                seq = m.metadata.sequence.stream
                if live.apply(m.data) and on_tick:
                    on_tick(live)
    finally:
        try:
            bus.call(sub.unsubscribe(), timeout=5)
        except Exception:
            log.debug("unsubscribe failed", exc_info=True)
    return live


# ------------------------------------------------------------------ the worker of one area
class AreaWorker:
    """The engine of one area, fed from its stream (see the module docstring)."""

    def __init__(self, bus: Bus, area: Area, *, tick: timedelta = timedelta(seconds=1),
                 fetch: int = 256) -> None:
        from indicators.engine.engine import Engine
        self.bus = bus
        self.area = area
        self.tick = tick
        self.fetch_n = fetch
        self.engine = Engine(area.catalog, area.inventory, tick=tick, behind="next_tick")
        self.covered = self._restore()
        self.applied = self.covered or 0
        self.ticks_published = 0
        self.duplicates_published = 0
        self.messages = 0
        self.dead_lettered = 0
        self._sub = self._consumer(self.applied + 1)

    # -------------------------------------------------------------- start-up
    def _restore(self) -> int | None:
        from nats.js.errors import NotFoundError, ObjectNotFoundError
        from indicators.engine.engine import Engine
        try:
            obs = self.bus.call(self.bus.js.object_store(names.CKPT_BUCKET))
            res = self.bus.call(obs.get(names.ckpt_object(self.area.id)), timeout=120)
        except (ObjectNotFoundError, NotFoundError):
            log.info("%s: no checkpoint, starting from the stream's first message", self.area.id)
            return None
        try:
            covered = self.engine.restore(res.data)
        except Exception as e:
            # taken with another catalog or engine version: the stream holds what it summarised
            log.warning("%s: checkpoint unusable (%s: %s); replaying the feed stream from its start",
                        self.area.id, type(e).__name__, e)
            self.engine = Engine(self.area.catalog, self.area.inventory, tick=self.tick, behind="next_tick")
            return None
        log.info("%s: restored at stream seq %s", self.area.id, covered)
        return covered

    def _consumer(self, start: int):
        """The area's durable consumer, (re)created at ``start``: the checkpoint decides where
        reading resumes, not an acknowledgement that may be ahead of it."""
        from nats.js import api
        from nats.js.errors import NotFoundError
        durable = names.engine_consumer(self.area.id)
        stream = names.feed_stream(self.area.id)
        try:
            self.bus.call(self.bus.js.delete_consumer(stream, durable))
        except NotFoundError:
            pass
        cfg = api.ConsumerConfig(durable_name=durable, deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                 opt_start_seq=max(1, start), ack_policy=api.AckPolicy.ALL, ack_wait=600.0,
                                 max_ack_pending=-1, description=f"engine worker of {self.area.id}")
        return self.bus.call(self.bus.js.pull_subscribe(names.feed_subject(self.area.id, ">"), durable=durable,
                                                        stream=stream, config=cfg))

    # -------------------------------------------------------------- running
    def poll(self, timeout: float = 1.0) -> int:
        """Apply the messages that are there (up to ``fetch``), publish the ticks they complete;
        returns how many new messages were applied."""
        import nats.errors
        from indicators.feeds.schemas import SCHEMAS
        import asyncio
        async def fetch():
            # a pull that never comes back (seen under load) is told apart from an empty one, which
            # nats-py ends with its own timeout error or, on one deadline path, Python's
            task = asyncio.ensure_future(self._sub.fetch(self.fetch_n, timeout=timeout))
            done, _ = await asyncio.wait({task}, timeout=timeout + 10)
            if not done:
                task.cancel()
                return None
            try:
                return task.result()
            except (nats.errors.TimeoutError, asyncio.TimeoutError, TimeoutError):
                return []
        msgs = self.bus.call(fetch())
        if msgs is None:
            # what the hung pull may have delivered is not processed: read again from the next
            # sequence instead of waiting for redelivery
            log.warning("%s: a fetch hung; reading again from seq %d", self.area.id, self.applied + 1)
            self._sub = self._consumer(self.applied + 1)
            return 0
        new = 0
        done = None
        for m in msgs:
            seq = m.metadata.sequence.stream
            if seq <= self.applied:              # redelivered, or covered by the checkpoint
                continue
            if seq != self.applied + 1 and self._missing(self.applied + 1, seq):
                # order is the whole point: a message before this one is still to come (a
                # delivery the consumer holds back for redelivery) - read again from it
                log.warning("%s: got seq %d while %d is next; reading again from %d", self.area.id, seq,
                            self.applied + 1, self.applied + 1)
                self._sub = self._consumer(self.applied + 1)
                break
            kind = m.subject.rsplit(".", 1)[1]
            if kind not in SCHEMAS:
                self._dead_letter(m, seq, f"{m.subject} names no feed kind (known: {', '.join(sorted(SCHEMAS))})")
            else:
                try:
                    table = table_of(m.data)
                except Exception as e:
                    table = None
                    self._dead_letter(m, seq, f"not an Arrow IPC feed batch ({type(e).__name__}: {str(e)[:200]}): "
                                              "feeds are published through the ingest front, which validates them")
                if table is not None:
                    try:
                        self.engine.ingest(kind, table, feed_seq=seq)
                    except Exception as e:
                        self._dead_letter(m, seq, f"the engine cannot take this {kind} batch "
                                                  f"({type(e).__name__}: {str(e)[:200]})")
            self.applied = seq
            new += 1
            self._advance()
            done = m
        if done is not None:
            self.bus.call(done.ack())            # AckPolicy.ALL: everything up to it
        self.messages += new
        return new

    def _dead_letter(self, m, seq: int, reason: str) -> None:
        """Keep an unreadable message aside with its reason (never a crash, never silent loss: a
        worker that raised here would stop at the same message after every restart)."""
        log.error("%s: feed message %d on %s put aside: %s", self.area.id, seq, m.subject, reason)
        headers = {"Nats-Msg-Id": f"dead:{self.area.id}:{seq}", "Scenic-Reason": reason[:1000],
                   "Scenic-Subject": m.subject, "Scenic-Seq": str(seq)}
        self.bus.call(self.bus.js.publish(names.dead_subject(self.area.id), m.data or b"",
                                          stream=names.dead_stream(self.area.id), headers=headers))
        self.dead_lettered += 1

    def _missing(self, want: int, got: int) -> bool:
        """Whether the stream still holds a message in [want, got) (not aged out or deleted)."""
        info = self.bus.call(self.bus.js.stream_info(names.feed_stream(self.area.id)))
        return want >= int(info.state.first_seq or 0) and got - want > int(info.state.num_deleted or 0)

    def _advance(self) -> None:
        wm = self.engine.watermark
        if wm is None:
            return
        ticks = list(self.engine.ticks(wm))
        if ticks:
            self._publish(ticks)

    def _publish(self, ticks) -> None:
        subject = names.values_subject(self.area.id)
        stream = names.values_stream(self.area.id)
        msgs = [values_message(self.area.id, t) for t in ticks]

        async def send():
            # all at once on the one connection (its order is kept), then their acknowledgements
            futs = [await self.bus.js.publish_async(subject, payload, stream=stream, headers=headers)
                    for payload, headers in msgs]
            return await asyncio.gather(*futs)
        for ack in self.bus.call(send(), timeout=60 + len(msgs)):
            if ack.duplicate:
                self.duplicates_published += 1
            else:
                self.ticks_published += 1

    def checkpoint(self) -> None:
        """Store the engine's state with the sequence it covers (replacing the previous one)."""
        if self.applied == (self.covered or 0):
            return
        blob = self.engine.to_bytes()
        obs = self.bus.call(self.bus.js.object_store(names.CKPT_BUCKET))
        self.bus.call(obs.put(names.ckpt_object(self.area.id), blob), timeout=120)
        self.covered = self.applied

    def status(self) -> dict[str, Any]:
        return {"area": self.area.id, "applied_seq": self.applied, "checkpoint_seq": self.covered,
                "messages": self.messages, "ticks_published": self.ticks_published,
                "ticks_republished": self.duplicates_published, "dead_lettered": self.dead_lettered,
                "last_tick": None if self.engine.last_tick is None else self.engine.last_tick.isoformat()}


def run_worker(bus: Bus, areas: list[str], *, checkpoint_every_s: float = 30.0,
               stop: threading.Event | None = None, exit_when_idle_s: float | None = None,
               tick: timedelta = timedelta(seconds=1), report: Callable[[str], None] | None = None) -> list[dict]:
    """Run one :class:`AreaWorker` per area until ``stop`` is set (or, with ``exit_when_idle_s``,
    until no area has had a message for that long); checkpoint every ``checkpoint_every_s`` and at
    the end.  Returns each area's status."""
    stop = stop or threading.Event()
    for a in areas:
        bus.ensure_area(a)
    workers = [AreaWorker(bus, load_area(a), tick=tick) for a in areas]
    say = report or (lambda s: None)
    say("worker: " + ", ".join(f"{w.area.id} from seq {w.applied + 1}" for w in workers))
    last_ckpt = time.monotonic()
    last_new = time.monotonic()
    wait = 1.0 if len(workers) == 1 else 0.2
    while not stop.is_set():
        got = sum(w.poll(timeout=wait) for w in workers)
        now = time.monotonic()
        if got:
            last_new = now
        if now - last_ckpt >= checkpoint_every_s:
            for w in workers:
                w.checkpoint()
            last_ckpt = now
            say("worker: " + "; ".join(f"{s['area']} seq {s['applied_seq']} ticks {s['ticks_published']}"
                                      for s in (w.status() for w in workers)))
        if exit_when_idle_s is not None and now - last_new >= exit_when_idle_s:
            break
    for w in workers:
        w.checkpoint()
    return [w.status() for w in workers]


def areas_from_settings(given: list[str] | None, env: dict[str, str] | None = None) -> list[str]:
    """The areas this worker owns: ``--area`` as given, else ``SCENIC_TWIN_AREAS``, else its ordinal
    (``SCENIC_TWIN_WORKER_ORDINAL`` or the host name's ``-N``) under ``SCENIC_TWIN_AREA_GROUPS``."""
    env = os.environ if env is None else env
    if given:
        return [names.check_area(a) for a in given]
    if env.get(names.ENV_AREAS):
        return [names.check_area(a.strip()) for a in env[names.ENV_AREAS].split(",") if a.strip()]
    groups = env.get(names.ENV_AREA_GROUPS)
    if groups:
        raw = env.get(names.ENV_WORKER_ORDINAL)
        ordinal = int(raw) if raw not in (None, "") else names.ordinal_from_hostname(socket.gethostname())
        if ordinal is None:
            raise ValueError(f"{names.ENV_AREA_GROUPS} is set but this worker has no ordinal: set "
                             f"{names.ENV_WORKER_ORDINAL} or run it with a host name ending in -N")
        return names.areas_for_ordinal(groups, ordinal)
    raise ValueError(f"no areas: pass --area, or set {names.ENV_AREAS} or {names.ENV_AREA_GROUPS}")


def main_worker(args) -> int:
    """``scenic-twin worker``."""
    import sys
    bus_url = args.bus or os.environ.get(names.ENV_BUS)
    if not bus_url:
        print(f"scenic-twin worker: no bus: pass --bus nats://HOST:4222 or set {names.ENV_BUS}", file=sys.stderr)
        return 2
    try:
        areas = areas_from_settings(args.area)
        for a in areas:
            if not known_area(a):
                load_area(a)              # raises with the list of known areas
    except ValueError as e:
        print(f"scenic-twin worker: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    from .jetstream import BusUnavailable
    try:
        bus = Bus(bus_url)
    except BusUnavailable as e:
        print(f"scenic-twin worker: {e}", file=sys.stderr)
        return 3
    with bus:
        st = run_worker(bus, areas, checkpoint_every_s=args.checkpoint_every, stop=stop,
                        exit_when_idle_s=args.exit_when_idle, report=say)
    print(json.dumps(st, ensure_ascii=False))
    return 0
