"""JetStream behind the feed seams: :class:`JetStreamSink` (what the ingestor makes durable) and
:class:`JetStreamSource` (ordered replay), over one synchronous :class:`Bus` connection.

The ingestor is synchronous (HTTP handlers, the simulator thread); nats-py is asyncio.  A
:class:`Bus` owns one event loop in a daemon thread and runs every request there, so callers
block exactly as they do on the local feed log: ``append`` returns once JetStream has stored the
batch (its PubAck) - on every replica the stream has, JetStream answers only after the quorum
stored it.

One stream per scenic area holds all its feed kinds (a subject per kind): an engine worker needs
one order over every kind of its area to give the same values on every run, and a stream's
sequence is that order.  Each batch carries a ``Nats-Msg-Id`` of its content, so a publish retried
after a lost acknowledgement is stored once (JetStream's duplicate window).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import threading
import time
from typing import Any, Coroutine, Iterator, TypeVar

import pyarrow as pa

from . import names

log = logging.getLogger(__name__)

T = TypeVar("T")

DUPLICATE_WINDOW_S = 600.0          # a retried publish within this is stored once
FEED_MAX_AGE_S = 7 * 86400.0        # feeds are kept a week on the bus (the engine checkpoints long before)
VALUES_MAX_AGE_S = 86400.0          # tick values a day (history has them for longer)
MAX_MESSAGE = 4 * 1024 * 1024       # the servers' max_payload (see server.py); larger batches are split
# JetStream's answers while a cluster cannot yet place a stream's replicas (nats-server's
# JSClusterNoPeersErr, JSClusterNotAvailErr): transient while its nodes join
PLACEMENT_PENDING = {10005, 10008}
PUBLISH_TRIES = 7                   # with back-off: ~16 s, more than a leader election


class BusUnavailable(RuntimeError):
    """The NATS servers cannot be reached; the message says which and what to do."""


class Bus:
    """One NATS connection with JetStream, usable from any thread."""

    def __init__(self, servers: str | list[str], *, timeout: float = 10.0, name: str = "scenic-twin") -> None:
        import nats
        self.servers = [s.strip() for s in servers.split(",")] if isinstance(servers, str) else list(servers)
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats-bus", daemon=True)
        self._thread.start()

        connected = threading.Event()
        first_errors: list[str] = []

        async def connect():
            async def quiet(e):                     # reconnects are normal in a cluster: logged, not raised
                if not connected.is_set():
                    first_errors.append(f"{type(e).__name__}: {e}")   # why the first connection fails
                (log.warning if connected.is_set() else log.debug)("NATS: %s", e)
            # reconnect for ever once up (a node restarts, a leader moves); the first connection
            # gets ``timeout`` seconds
            return await asyncio.wait_for(nats.connect(
                servers=self.servers, name=name, connect_timeout=min(timeout, 5), max_reconnect_attempts=-1,
                reconnect_time_wait=0.5, allow_reconnect=True, error_cb=quiet), timeout)
        try:
            self.nc = self.call(connect(), timeout=timeout + 5)
            connected.set()
        except Exception as e:
            self._stop_loop()
            why = f"no answer within {timeout:g} s" if isinstance(e, TimeoutError) else f"{type(e).__name__}: {e}"
            if any("authorization" in x.lower() for x in first_errors):
                why = "the server refused the user or password in the URL (Authorization Violation)"
            elif first_errors:
                why += f"; last error: {first_errors[-1][:200]}"
            shown = ", ".join(re.sub(r"://[^@/]*@", "://…@", u) for u in self.servers)   # no password in logs
            raise BusUnavailable(f"cannot reach NATS at {shown} ({why}); "
                                 f"start one (`scenic-twin bus serve`) or pass the right --bus / "
                                 f"{names.ENV_BUS}") from None
        self.js = self.nc.jetstream(timeout=timeout)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the bus's loop and wait for it."""
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(self.timeout * 3 if timeout is None else timeout)

    def _stop_loop(self) -> None:
        async def cancel_rest():
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
        try:
            self.call(cancel_rest(), timeout=5)
        except Exception:
            log.debug("cancelling the bus's tasks failed", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def close(self) -> None:
        """Close the connection (every publish was awaited: nothing is in flight to drain)."""
        try:
            self.call(self.nc.close(), timeout=10)
        except Exception:  # closing a broken connection: nothing left to save
            log.debug("NATS close failed", exc_info=True)
        self._stop_loop()

    def __enter__(self) -> "Bus":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- streams
    def ensure_area(self, area: str, *, replicas: int | None = None, placement_wait_s: float = 60.0) -> None:
        """Create (or bring up to date) ``area``'s feed and values streams and the shared buckets.

        Waits up to ``placement_wait_s`` for a cluster whose nodes are still joining to have
        ``replicas`` of them online; then raises :class:`BusUnavailable` saying so."""
        from nats.js import api
        from nats.js.errors import NotFoundError
        replicas = replicas or int(os.environ.get(names.ENV_REPLICAS, "1"))
        configs = [
            api.StreamConfig(name=names.feed_stream(area), subjects=[names.feed_subject(area, ">")],
                             storage=api.StorageType.FILE, num_replicas=replicas,
                             duplicate_window=DUPLICATE_WINDOW_S, max_age=FEED_MAX_AGE_S,
                             max_msg_size=MAX_MESSAGE, discard=api.DiscardPolicy.OLD,
                             description=f"accepted feed batches of scenic area {area}"),
            api.StreamConfig(name=names.values_stream(area), subjects=[names.values_subject(area)],
                             storage=api.StorageType.FILE, num_replicas=replicas,
                             duplicate_window=DUPLICATE_WINDOW_S, max_age=VALUES_MAX_AGE_S,
                             description=f"indicator values of scenic area {area}, one message per tick"),
            api.StreamConfig(name=names.raw_stream(area), subjects=[names.raw_subject(area, ">")],
                             storage=api.StorageType.FILE, num_replicas=replicas,
                             duplicate_window=DUPLICATE_WINDOW_S, max_age=FEED_MAX_AGE_S,
                             max_msg_size=MAX_MESSAGE, discard=api.DiscardPolicy.OLD,
                             description=f"raw records from gateways of scenic area {area} (MQTT "
                                         f"scenic/{area}/raw/<kind>), read by the area's front"),
            api.StreamConfig(name=names.dead_stream(area), subjects=[names.dead_subject(area)],
                             storage=api.StorageType.FILE, num_replicas=replicas,
                             duplicate_window=DUPLICATE_WINDOW_S, max_age=FEED_MAX_AGE_S,
                             max_msg_size=MAX_MESSAGE + 64 * 1024, discard=api.DiscardPolicy.OLD,
                             description=f"feed messages of scenic area {area} no worker could read, "
                                         "with the reason (Scenic-Reason header)"),
        ]

        async def ensure():
            for cfg in configs:
                try:
                    await self.js.stream_info(cfg.name)
                    await self.js.update_stream(cfg)
                except NotFoundError:
                    await self.js.add_stream(cfg)
            for bucket, kv in ((names.CKPT_BUCKET, False), (names.LIVE_BUCKET, True)):
                try:
                    await (self.js.key_value(bucket) if kv else self.js.object_store(bucket))
                except NotFoundError:                  # BucketNotFoundError is one
                    if kv:
                        await self.js.create_key_value(api.KeyValueConfig(
                            bucket=bucket, history=1, replicas=replicas, storage=api.StorageType.FILE))
                    else:
                        await self.js.create_object_store(bucket, config=api.ObjectStoreConfig(
                            bucket=bucket, replicas=replicas, storage=api.StorageType.FILE))

        # A cluster that is forming (or has a node restarting) has a meta leader before its leader
        # has heard from every peer: placing ``replicas`` copies fails for a moment with "no
        # suitable peers for placement".  Every step above is idempotent: wait and try again.
        deadline = time.monotonic() + placement_wait_s
        waited = False
        while True:
            try:
                self.call(ensure())
                break
            except Exception as e:
                code = getattr(e, "err_code", None)
                if code not in PLACEMENT_PENDING or time.monotonic() >= deadline:
                    if code in PLACEMENT_PENDING:
                        raise BusUnavailable(
                            f"JetStream cannot place {replicas} replicas of scenic area {area}'s "
                            f"streams after {placement_wait_s:g} s ({getattr(e, 'description', e)}): "
                            f"start the cluster's missing nodes, or set {names.ENV_REPLICAS} to the "
                            f"number of nodes that run") from e
                    raise
                if not waited:
                    log.warning("JetStream cannot place %d replicas of %s yet (%s); waiting up to %g s "
                                "for the cluster's peers", replicas, area,
                                getattr(e, "description", e), placement_wait_s)
                    waited = True
                time.sleep(0.5)

    def last_seq(self, stream: str) -> int:
        info = self.call(self.js.stream_info(stream))
        return int(info.state.last_seq or 0)


def table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def table_of(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _parts(table: pa.Table, limit: int) -> Iterator[bytes]:
    """The table as IPC messages of at most ``limit`` bytes (row slices; one row never splits)."""
    data = table_bytes(table)
    if len(data) <= limit or table.num_rows <= 1:
        yield data
        return
    half = table.num_rows // 2
    yield from _parts(table.slice(0, half), limit)
    yield from _parts(table.slice(half), limit)


class JetStreamSink:
    """The ingestor's durable log as ``area``'s JetStream stream (see the module docstring).

    ``append`` returns the stream sequence of the batch's last message once JetStream stored it;
    it raises when JetStream did not confirm (the ingestor then answers an error and the sender
    retries: nothing is acknowledged that is not stored)."""

    def __init__(self, bus: Bus, area: str, *, max_message: int = MAX_MESSAGE // 2) -> None:
        self.bus = bus
        self.area = names.check_area(area)
        self.stream = names.feed_stream(area)
        self.max_message = max_message
        self.published = 0

    def append(self, kind: str, table: pa.Table) -> int:
        seq = 0
        for payload in _parts(table, self.max_message):
            seq = self._publish(names.feed_subject(self.area, kind), payload)
        return seq

    def _publish(self, subject: str, payload: bytes) -> int:
        headers = {"Nats-Msg-Id": hashlib.sha256(payload).hexdigest()}
        last: Exception | None = None
        for attempt in range(PUBLISH_TRIES):
            if attempt:
                time.sleep(min(0.25 * 2 ** (attempt - 1), 4.0))   # a leader election takes seconds
            try:
                ack = self.bus.call(self.bus.js.publish(subject, payload, stream=self.stream, headers=headers))
                self.published += 0 if ack.duplicate else 1
                return int(ack.seq)
            except Exception as e:          # a timeout or a leader election: the same id again is safe
                last = e
                log.warning("JetStream publish to %s not confirmed (%s: %s); retrying", subject,
                            type(e).__name__, e)
        raise RuntimeError(f"JetStream did not store the batch on {subject} after {PUBLISH_TRIES} tries "
                           f"({type(last).__name__}: {last}); the sender should retry") from last

    def read(self, seq: int) -> tuple[int, str, pa.Table] | None:
        """One stored batch by its sequence (the ingestor compares a repeated event id with it)."""
        from nats.js.errors import NotFoundError
        try:
            m = self.bus.call(self.bus.js.get_msg(self.stream, seq))
        except NotFoundError:
            return None
        return seq, m.subject.rsplit(".", 1)[1], table_of(m.data)

    # The ingestor rebuilds its de-duplication state from what its sink holds.
    def replay(self, from_seq: int = 0) -> Iterator[tuple[int, str, pa.Table]]:
        return JetStreamSource(self.bus, self.area).replay(from_seq)

    @property
    def last_seq(self) -> int:
        return self.bus.last_seq(self.stream)


class _Stalled(Exception):
    """A replay's consumer gives nothing although the stream holds more (its leader moved)."""


class JetStreamSource:
    """Ordered replay of ``area``'s feed stream from a sequence to its end at the time of the call."""

    def __init__(self, bus: Bus, area: str, *, batch: int = 256) -> None:
        self.bus = bus
        self.area = names.check_area(area)
        self.stream = names.feed_stream(area)
        self.batch = batch

    RECOVER_S = 60.0
    """How long a replay waits for the stream to answer again after its leader is lost."""

    def replay(self, from_seq: int = 0) -> Iterator[tuple[int, str, pa.Table]]:
        import nats.errors
        import nats.js.errors
        end = self.bus.last_seq(self.stream)
        seq = max(1, int(from_seq)) - 1
        lost_at: float | None = None
        while seq < end:
            # a node of the cluster lost (the stream's or the consumer's leader): the cluster elects
            # another in seconds, meanwhile it answers 503 or not at all (a fetch that times out
            # while the stream holds more is a _Stalled); start again after the last message given,
            # for up to RECOVER_S
            try:
                for seq_now, subject, table in self._replay_from(seq + 1, end):
                    seq, lost_at = seq_now, None
                    yield seq_now, subject, table
                return
            except (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError, _Stalled,
                    TimeoutError) as e:       # a request unanswered (creating the consumer, the stream's state)
                now = time.monotonic()
                lost_at = now if lost_at is None else lost_at
                if now - lost_at > self.RECOVER_S:
                    raise
                log.warning("%s: replay at seq %d interrupted (%s); resuming", self.stream, seq, type(e).__name__)
                time.sleep(1.0)

    def _replay_from(self, start: int, end: int) -> Iterator[tuple[int, str, pa.Table]]:
        import nats.errors
        from nats.js import api
        cfg = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start,
                                 ack_policy=api.AckPolicy.NONE, inactive_threshold=60.0)
        sub = self.bus.call(self.bus.js.pull_subscribe(names.feed_subject(self.area, ">"), durable=None,
                                                       stream=self.stream, config=cfg))
        try:
            seq = start - 1
            while seq < end:
                try:
                    msgs = self.bus.call(sub.fetch(self.batch, timeout=5))
                except nats.errors.TimeoutError:
                    state = self.bus.call(self.bus.js.stream_info(self.stream)).state
                    if state.first_seq > end or state.last_seq <= seq:   # the rest aged out meanwhile
                        log.warning("%s: replay ended at seq %d, before %d (messages no longer kept)",
                                    self.stream, seq, end)
                        return
                    raise _Stalled(f"no message after seq {seq} within 5 s, the stream holds "
                                   f"{state.first_seq}..{state.last_seq}") from None
                for m in msgs:
                    seq = m.metadata.sequence.stream
                    if seq > end:
                        return
                    yield seq, m.subject.rsplit(".", 1)[1], table_of(m.data)
        finally:
            try:
                self.bus.call(sub.unsubscribe(), timeout=5)
            except Exception:  # the ephemeral consumer expires on its own (inactive_threshold)
                log.debug("unsubscribe failed", exc_info=True)
