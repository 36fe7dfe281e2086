"""The ingestion pipeline: validate -> de-duplicate -> split late -> log -> publish.

:class:`Ingestor` takes batches of one feed kind (an Arrow table or dict
records) and for each batch:

1. validates it (:func:`~indicators.feeds.validate.validate`, with ``now`` from
   the injected clock); bad records go to the dead-letter store;
2. drops duplicates by ``(kind, event_id)``, inside the batch (first wins) and
   against everything accepted before (the seen-id set is rebuilt from the log
   on start-up);
3. splits late events: per kind the watermark is
   ``min(max accepted event_time, now) - allowed_lateness`` (never moving
   back); events older than the watermark go to the late store (reason
   ``late``) - kept aside, not merged and not dropped.  Late is decided
   before duplicates, so the seen-id set may forget ids older than the
   watermark without changing any outcome (it stays bounded);
4. appends the rest to the durable :class:`~indicators.feeds.log.FeedLog`
   (one frame, ``fsync``-ed) - the batch is acknowledged only after this;
5. publishes ``(seq, kind, table)`` to subscribers (in seq order);
6. returns a :class:`Receipt`.

It never raises on bad data; it raises on programmer errors (wrong argument
types) and on infrastructure failures (the log cannot be written: the caller
must then not acknowledge the batch upstream).  One lock serialises submits.

Where a message bus plugs in
----------------------------
The log is used only through the :class:`Sink` (``append``) and
:class:`Source` (``replay``) protocols below, so NATS JetStream can come in
at two places without touching the pipeline:

* **in front** (transport): a JetStream pull consumer reads feed messages,
  calls :meth:`Ingestor.submit` / :meth:`Ingestor.submit_parsed` and acks the
  message only after the :class:`Receipt` came back (at-least-once delivery;
  the idempotent de-duplication by ``event_id`` makes redeliveries harmless);
* **behind** (fan-out / replication): an object implementing :class:`Sink` and
  :class:`Source` over a JetStream stream (``append`` = publish the frame's
  Arrow IPC bytes with ``Nats-Msg-Id = "<kind>:<seq>"`` and wait for the
  PubAck; ``replay`` = an ordered consumer from a stream sequence) replaces or
  wraps the :class:`FeedLog`; subscribers of other processes then read the
  stream instead of :meth:`Ingestor.subscribe`.
"""
from __future__ import annotations

import heapq
import io
import json
import logging
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from .deadletter import DeadLetterStore
from .schemas import ALLOWED_LATENESS, SCHEMAS
from .validate import (
    BAD_TYPE, CONFLICTING_DUPLICATE, MISSING_FIELD, PARSE_ERROR, UNKNOWN_KIND, UNKNOWN_REFERENCE, BadRecord, reason_code, to_raw,
    validate,
)

__all__ = [
    "Ingestor", "Receipt", "Sink", "Source", "Subscriber",
    "read_arrow_stream", "DEFAULT_LATENESS",
]

log = logging.getLogger(__name__)

DEFAULT_LATENESS = ALLOWED_LATENESS
_MS = timedelta(milliseconds=1)


@runtime_checkable
class Sink(Protocol):
    """Where accepted batches are made durable (the :class:`FeedLog`, or a
    JetStream publisher).  ``append`` returns only once the batch is durable
    and returns its sequence number."""

    def append(self, kind: str, table: pa.Table) -> int: ...


@runtime_checkable
class Source(Protocol):
    """Ordered replay of what a :class:`Sink` accepted."""

    def replay(self, from_seq: int = 0) -> Iterator[tuple[int, str, pa.Table]]: ...


Subscriber = Callable[[int, str, pa.Table], None]


@dataclass(frozen=True)
class Receipt:
    """What happened to one submitted batch.

    ``seq`` is the log sequence number of the accepted rows (None when none
    were accepted); ``seqs`` lists all of them when several kinds were
    submitted at once (:meth:`Ingestor.submit_parsed`, JSON lines with
    ``kind`` per line).
    """

    accepted: int
    duplicates: int
    late: int
    rejected: list[BadRecord]
    seq: int | None
    seqs: tuple[int, ...] = ()
    updated: int = 0      # of the accepted: records that update one sent before (a warning's Update, a case step)
    ended: int = 0        # of the accepted: records that end one (a cancelled warning or all-clear, a closed case)

    @property
    def received(self) -> int:
        return self.accepted + self.duplicates + self.late + len(self.rejected)

    @property
    def conflicting(self) -> int:
        """Repeats of an accepted event id with other content (among :attr:`rejected`)."""
        return sum(1 for b in self.rejected if b.code == CONFLICTING_DUPLICATE)

    @classmethod
    def merge(cls, receipts: Iterable["Receipt"], extra_rejected: Sequence[BadRecord] = ()) -> "Receipt":
        rs = list(receipts)
        seqs = tuple(s for r in rs for s in (r.seqs or ((r.seq,) if r.seq is not None else ())))
        rejected = sorted([*extra_rejected, *(b for r in rs for b in r.rejected)], key=lambda b: b.index)
        return cls(sum(r.accepted for r in rs), sum(r.duplicates for r in rs), sum(r.late for r in rs),
                   rejected, seqs[-1] if seqs else None, seqs, sum(r.updated for r in rs), sum(r.ended for r in rs))

    def to_dict(self, *, raw: bool = False) -> dict[str, Any]:
        """JSON-ready form (used by the HTTP front end)."""
        def bad(b: BadRecord) -> dict[str, Any]:
            d: dict[str, Any] = {"index": b.index, "kind": b.kind, "code": b.code, "reason": b.reason}
            if b.where:
                d["where"] = b.where
            if raw:
                d["raw"] = b.raw
            return d
        return {"accepted": self.accepted, "updated": self.updated, "ended": self.ended,
                "duplicates": self.duplicates, "late": self.late, "conflicting": self.conflicting, "rejected_count": len(self.rejected), "seq": self.seq, "seqs": list(self.seqs),
                "rejected": [bad(b) for b in self.rejected]}


class _KindState:
    """Per-kind de-duplication and watermark state."""

    __slots__ = ("max_ms", "wm_ms", "seen", "heap", "counter")

    def __init__(self) -> None:
        self.max_ms: int | None = None           # max accepted event_time
        self.wm_ms: int | None = None            # watermark, never moves back
        self.seen: dict[str, int] = {}            # accepted event id -> the log seq that holds it
        self.heap: list[tuple[int, int, list[str]]] = []   # (batch max ms, n, ids)
        self.counter = 0

    def watermark(self, now_ms: int, lateness_ms: int) -> int | None:
        if self.max_ms is None:
            return self.wm_ms
        wm = min(self.max_ms, now_ms) - lateness_ms
        if self.wm_ms is None or wm > self.wm_ms:
            self.wm_ms = wm
        return self.wm_ms

    def remember(self, ids: list[str], times_ms: np.ndarray, seq: int) -> None:
        if not ids:
            return
        hi = int(times_ms.max())
        self.max_ms = hi if self.max_ms is None else max(self.max_ms, hi)
        self.seen.update(dict.fromkeys(ids, seq))
        self.counter += 1
        heapq.heappush(self.heap, (hi, self.counter, ids))

    def forget_before(self, wm_ms: int | None) -> None:
        """Drop ids of batches whose newest event is older than the watermark:
        any re-send of them is late, so they can no longer be duplicates."""
        if wm_ms is None:
            return
        while self.heap and self.heap[0][0] < wm_ms:
            _, _, ids = heapq.heappop(self.heap)
            for i in ids:
                self.seen.pop(i, None)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _ms(dt: datetime) -> int:
    return (_aware(dt) - datetime(1970, 1, 1, tzinfo=timezone.utc)) // _MS


_STEPS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "warning": (frozenset({"updated"}), frozenset({"cancelled"})),
    "case": (frozenset({"dispatched", "handling", "verifying"}), frozenset({"closed"})),
}
"""Per kind of records with a life cycle: the statuses that update an earlier record, and those that end it."""

REFERENCE_COLUMNS: dict[str, dict[str, str]] = {
    "crowd": {"zone_id": "zone"}, "gate": {"gate_id": "asset", "zone_id": "zone"},
    "video": {"camera_id": "asset", "zone_id": "zone"}, "facility": {"asset_id": "asset"},
    "station": {"station_id": "asset"}, "traffic": {"segment_id": "asset"}, "case": {"zone_id": "zone"},
}
"""Which id columns of which feed kinds name inventory things: a management zone, or an asset."""


def references_from_inventory(gdf) -> dict[str, dict[str, frozenset[str]]]:
    """The ids each checked column may take, from the asset inventory."""
    zones = frozenset(gdf.loc[gdf["type"] == "management_zone", "zone_id"].dropna())
    assets = frozenset(gdf["asset_id"])
    pick = {"zone": zones, "asset": assets}
    return {kind: {col: pick[what] for col, what in cols.items()} for kind, cols in REFERENCE_COLUMNS.items()}


class Ingestor:
    """Validate, de-duplicate, split late events, log durably and publish.

    ``allowed_lateness``: one ``timedelta`` for all kinds, or a dict per kind
    (kinds missing from it get :data:`DEFAULT_LATENESS`).  ``clock`` returns
    the current UTC time (inject a fake one in tests).
    """

    def __init__(self, log: Sink, dead: DeadLetterStore, *,
                 allowed_lateness: Mapping[str, timedelta] | timedelta = DEFAULT_LATENESS,
                 clock: Callable[[], datetime] = _utc_now,
                 references: Mapping[str, Mapping[str, "frozenset[str] | set[str]"]] | None = None) -> None:
        """``references``: per kind, per id column, the ids that exist (the inventory's zones,
        gates, cameras, assets …, see :func:`references_from_inventory`); a record naming
        another is dead-lettered as ``unknown_reference``.  None: no check (a bare pipeline)."""
        if not isinstance(log, Sink):
            raise TypeError("log must have append(kind, table) -> int")
        self.log = log
        self.dead = dead
        self.clock = clock
        if isinstance(allowed_lateness, timedelta):
            self._lateness = defaultdict(lambda: allowed_lateness)
        else:
            default = DEFAULT_LATENESS
            self._lateness = defaultdict(lambda: default, dict(allowed_lateness))
        self.references = {k: {c: frozenset(v) for c, v in cols.items()} for k, cols in (references or {}).items()}
        self._lock = threading.RLock()
        self._state: dict[str, _KindState] = defaultdict(_KindState)
        self._subs: list[Subscriber] = []
        self._stats: dict[str, Counter[str]] = defaultdict(Counter)
        self._rebuild()

    # ----------------------------------------------------------- start-up
    def _rebuild(self) -> None:
        """Rebuild seen ids and max event times from the log."""
        if not isinstance(self.log, Source):
            return
        for seq, kind, table in self.log.replay(0):
            if "event_id" not in table.column_names or table.num_rows == 0:
                continue
            ids = table.column("event_id").to_pylist()
            times = _times_ms(table)
            self._state[kind].remember(ids, times, seq)
        now_ms = _ms(self.clock())
        for kind, st in self._state.items():
            st.forget_before(st.watermark(now_ms, self._lateness_ms(kind)))

    def _lateness_ms(self, kind: str) -> int:
        return self._lateness[kind] // _MS

    # -------------------------------------------------------- subscribers
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(seq, kind, table)`` after each durable append (in
        seq order, under the ingest lock: keep it quick).  Returns a function
        that unsubscribes."""
        with self._lock:
            self._subs.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subs:
                    self._subs.remove(callback)
        return unsubscribe

    # ------------------------------------------------------------ submit
    def submit(self, kind: str, records: pa.Table | pa.RecordBatch | Iterable[Mapping[str, Any]], *,
               source: str | None = None) -> Receipt:
        """Ingest one batch of ``kind``; see the module docstring."""
        return self._submit(kind, records, source=source)

    def _submit(self, kind: str, records: Any, *, source: str | None,
                index_map: Sequence[int] | None = None,
                raw_of: Callable[[int], str] | None = None) -> Receipt:
        if not isinstance(kind, str):
            raise TypeError(f"kind must be a str, not {type(kind).__name__}")
        with self._lock:
            now = _aware(self.clock())
            if self.references.get(kind) and not isinstance(records, (pa.Table, pa.RecordBatch)):
                records = list(records)               # counted below, to locate the rows it keeps
            good, bad = validate(kind, records, now=now)
            if self.references.get(kind) and good.num_rows:
                good, bad = self._check_references(kind, records, good, bad)
            if index_map is not None or raw_of is not None:
                bad = [self._relocate(b, index_map, raw_of) for b in bad]
            if kind not in SCHEMAS or good.num_rows == 0:
                self._dead_letter(bad, source, now)
                return Receipt(0, 0, 0, bad, None)

            if source is not None:
                src = good.column("source")
                if src.null_count:
                    good = good.set_column(good.schema.get_field_index("source"), good.schema.field("source"),
                                           pc.fill_null(src, source))
            n = good.num_rows
            st = self._state[kind]
            ids = good.column("event_id").to_pylist()
            times = _times_ms(good)

            batch_ids = set(ids)
            keep = np.ones(n, dtype=bool)              # first occurrence in batch
            again: list[tuple[int, int | None, int | None]] = []   # (row, first row in batch, seq of the first)
            if len(batch_ids) < n:
                first: dict[str, int] = {}
                for i, e in enumerate(ids):
                    if e in first:
                        keep[i] = False
                        again.append((i, first[e], None))
                    else:
                        first[e] = i
            wm = st.watermark(_ms(now), self._lateness_ms(kind))
            late = keep & (times < wm) if wm is not None else np.zeros(n, dtype=bool)
            accept = keep & ~late
            if st.seen and not st.seen.keys().isdisjoint(batch_ids):
                seen = st.seen
                for i in np.flatnonzero(accept).tolist():
                    if ids[i] in seen:
                        accept[i] = False
                        again.append((i, None, seen[ids[i]]))
            if again and st.seen:
                # a repeat within the batch of an id the log holds is compared with the logged one
                again = [(i, None, st.seen[ids[i]]) if j is not None and ids[i] in st.seen else (i, j, q)
                         for i, j, q in again]
            conflicts = self._conflicts(kind, good, again) if again else []
            if conflicts:
                bad = bad + conflicts
            n_acc = int(accept.sum())
            n_late = int(late.sum())
            n_dup = n - n_acc - n_late - len(conflicts)

            seq = None
            acc_table = None
            if n_acc:
                acc_table = good if n_acc == n else good.filter(pa.array(accept))
                seq = self.log.append(kind, acc_table)      # durable from here on
                acc_ids = ids if n_acc == n else [ids[i] for i in np.flatnonzero(accept).tolist()]
                st.remember(acc_ids, times[accept], seq)
                st.forget_before(st.watermark(_ms(now), self._lateness_ms(kind)))
            if n_late:
                rows = good.filter(pa.array(late)).to_pylist()
                wm_dt = datetime(1970, 1, 1, tzinfo=timezone.utc) + wm * _MS  # type: ignore[operator]
                self.dead.put_late(kind, rows, watermark=wm_dt, source=source, received_at=now)
            self._dead_letter(bad, source, now)

            c = self._stats[kind]
            c["accepted"] += n_acc
            c["duplicate"] += n_dup
            c["late"] += n_late
            if seq is not None and acc_table is not None:
                self._publish(seq, kind, acc_table)
            n_upd = n_end = 0
            if acc_table is not None and kind in _STEPS:
                status = acc_table.column("status")
                n_upd = int(pc.sum(pc.is_in(status, pa.array(sorted(_STEPS[kind][0])))).as_py() or 0)
                n_end = int(pc.sum(pc.is_in(status, pa.array(sorted(_STEPS[kind][1])))).as_py() or 0)
            return Receipt(n_acc, n_dup, n_late, bad, seq, (seq,) if seq is not None else (), n_upd, n_end)

    def _conflicts(self, kind: str, good: pa.Table,
                   again: list[tuple[int, int | None, int | None]]) -> list[BadRecord]:
        """The repeats of an event id whose content differs from the first one (kept): each
        becomes a ``conflicting_duplicate`` dead letter holding both payloads.  The first is read
        from this batch or from the log frame that holds it; without a readable log (a bare
        :class:`Sink`) a repeat counts as a plain duplicate."""
        firsts: dict[str, dict[str, Any]] = {}
        want: dict[int, set[str]] = defaultdict(set)
        rows = good.to_pylist() if len(again) * 4 > good.num_rows else None
        row = (lambda i: rows[i]) if rows is not None else (lambda i: good.slice(i, 1).to_pylist()[0])
        for _i, j, seq in again:
            if seq is not None:
                want[seq].add(good.column("event_id")[_i].as_py())
        if want and isinstance(self.log, Source):
            for seq, ids in want.items():
                try:
                    read = getattr(self.log, "read", None)       # a bus reads one message directly
                    got = read(seq) if read is not None else next(iter(self.log.replay(seq)), None)
                except Exception:                   # unreadable: judged as plain duplicates below
                    log.exception("reading log frame %s to compare a repeated event id failed", seq)
                    got = None
                if got is None or got[0] != seq or got[1] != kind:
                    continue
                t = got[2]
                eids = t.column("event_id").to_pylist()
                for k, e in enumerate(eids):
                    if e in ids:
                        firsts[e] = t.slice(k, 1).to_pylist()[0]
        out = []
        for i, j, seq in again:
            mine = row(i)
            e = mine["event_id"]
            kept = row(j) if j is not None else firsts.get(e)
            if kept is None:
                continue
            diff = _content_diff(kept, mine)
            if not diff:
                continue
            where = "sent earlier in this batch" if j is not None else f"accepted before (feed log seq {seq})"
            shown = "; ".join(f"{k}: {_short(a)} -> {_short(b)}" for k, a, b in diff[:4])
            more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
            out.append(BadRecord(
                kind=kind, raw=to_raw({"kept": _jsonable(kept), "refused": _jsonable(mine)}), index=-1,
                code=CONFLICTING_DUPLICATE, where=f"event_id {e!r}",
                reason=(f"event_id {e!r} was {where} with other content ({shown}{more}); the first "
                        f"is kept and this one is set aside with both payloads: the sender must give a "
                        f"corrected record a new event_id")))
        return out

    def _check_references(self, kind: str, records: Any, good: pa.Table,
                          bad: list[BadRecord]) -> tuple[pa.Table, list[BadRecord]]:
        """Rows whose ids name nothing the inventory has become ``unknown_reference`` records
        (located by their index in the batch); the rest go on."""
        n_in = records.num_rows if isinstance(records, (pa.Table, pa.RecordBatch)) else len(records)
        dropped = {b.index for b in bad}
        index = [i for i in range(n_in) if i not in dropped]
        if len(index) != good.num_rows:                     # cannot locate: judge, index by row
            index = list(range(good.num_rows))
        ok = np.ones(good.num_rows, dtype=bool)
        found: list[BadRecord] = []
        for col, known in self.references[kind].items():
            if col not in good.column_names:
                continue
            values = good.column(col).to_pylist()
            for r, v in enumerate(values):
                if v is not None and ok[r] and v not in known:
                    ok[r] = False
                    found.append(BadRecord(kind, to_raw(good.slice(r, 1).to_pylist()[0]),
                                           f"{col} {v[:80]!r} names nothing in the asset inventory "
                                           f"({len(known)} known); add it with `scenic-twin assets import` "
                                           "or fix the sender's mapping", index[r], UNKNOWN_REFERENCE, col))
        if not found:
            return good, bad
        return good.filter(pa.array(ok)), sorted(bad + found, key=lambda b: b.index)

    @staticmethod
    def _relocate(b: BadRecord, index_map: Sequence[int] | None,
                  raw_of: Callable[[int], str] | None) -> BadRecord:
        idx = index_map[b.index] if index_map is not None and 0 <= b.index < len(index_map) else b.index
        raw = raw_of(idx) if raw_of is not None else b.raw
        return replace(b, index=idx, raw=raw, where=b.where or f"line {idx + 1}")

    def _publish(self, seq: int, kind: str, table: pa.Table) -> None:
        for cb in list(self._subs):
            try:
                cb(seq, kind, table)
            except Exception:  # a subscriber's bug must not undo a durable accept
                log.exception("feed subscriber %r failed on seq %s", cb, seq)
                self._stats[kind]["subscriber_error"] += 1

    def _dead_letter(self, bad: list[BadRecord], source: str | None, now: datetime) -> None:
        if not bad:
            return
        self.dead.put(bad, source=source, received_at=now)
        for b in bad:
            self._stats[b.kind]["rejected:" + (b.code or PARSE_ERROR)] += 1

    def reject(self, items: Iterable[BadRecord], *, source: str | None = None) -> list[BadRecord]:
        """Dead-letter records a front end could not even parse (counted in
        :meth:`stats`); returns them."""
        bad = list(items)
        with self._lock:
            self._dead_letter(bad, source, _aware(self.clock()))
        return bad

    def submit_parsed(self, parsed: Any, *, source: str | None = None) -> Receipt:
        """Ingest an adapter's result: anything with ``.tables`` (dict kind ->
        table) and ``.rejects`` (items with ``raw``, ``reason``, ``where``)."""
        tables = getattr(parsed, "tables", None)
        rejects = getattr(parsed, "rejects", None)
        if tables is None or rejects is None:
            raise TypeError("submit_parsed needs an object with .tables and .rejects")
        if source is None:
            source = getattr(parsed, "source", None)
        only_kind = next(iter(tables)) if len(tables) == 1 else None
        extra = []
        for r in rejects:
            reason = str(getattr(r, "reason", "") or "rejected by the feed adapter")
            extra.append(BadRecord(
                kind=getattr(r, "kind", None) or only_kind or getattr(parsed, "kind", None) or "(unparsed)",
                raw=to_raw(getattr(r, "raw", "")), reason=reason,
                index=int(getattr(r, "index", -1)) if isinstance(getattr(r, "index", -1), int) else -1,
                code=getattr(r, "code", "") or reason_code(reason, PARSE_ERROR),
                where=str(getattr(r, "where", "") or "")))
        if extra:
            self.reject(extra, source=source)
        receipts = [self.submit(kind, table, source=source) for kind, table in tables.items()]
        return Receipt.merge(receipts, extra)

    def submit_ndjson(self, body: bytes, *, kind: str | None = None, source: str | None = None) -> Receipt:
        """Ingest JSON lines.  With ``kind`` every line is a record of that
        kind; without, every line carries its kind in a ``kind`` field.  Bad
        lines are rejected with ``index`` = 0-based line number."""
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError("body must be bytes")
        body = bytes(body)
        lines_cache: list[list[bytes]] = []

        def lines() -> list[bytes]:
            if not lines_cache:
                lines_cache.append(body.split(b"\n"))
            return lines_cache[0]

        def raw_of(lineno: int) -> str:
            ls = lines()
            return to_raw(ls[lineno].rstrip(b"\r")) if 0 <= lineno < len(ls) else ""

        if kind is not None and kind in SCHEMAS:
            table = _fast_ndjson(kind, body)
            if table is not None:
                return self._submit(kind, table, source=source, raw_of=raw_of)
        records: dict[str, list[Any]] = defaultdict(list)
        where: dict[str, list[int]] = defaultdict(list)
        errors: list[BadRecord] = []
        for lineno, line in enumerate(lines()):
            text = line.strip()
            if not text:
                continue
            k = kind or "(unknown)"
            try:
                obj = json.loads(text.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError) as e:
                msg = str(e).split("\n")[0][:200]
                errors.append(BadRecord(k, to_raw(text), f"line {lineno + 1} is not valid JSON ({msg})",
                                        lineno, PARSE_ERROR, f"line {lineno + 1}"))
                continue
            if kind is None:
                if not isinstance(obj, dict):
                    errors.append(BadRecord(k, to_raw(text), f"line {lineno + 1} is not a JSON object",
                                            lineno, BAD_TYPE, f"line {lineno + 1}"))
                    continue
                k = obj.get("kind")
                if k is None:
                    errors.append(BadRecord("(unknown)", to_raw(text), "field 'kind' is missing",
                                            lineno, MISSING_FIELD, f"line {lineno + 1}"))
                    continue
                if not isinstance(k, str) or k not in SCHEMAS:
                    errors.append(BadRecord(str(k)[:50], to_raw(text),
                                            f"field 'kind' = {json.dumps(k, ensure_ascii=False)[:60]} is not a known feed kind "
                                            f"({', '.join(SCHEMAS)})", lineno, UNKNOWN_KIND, f"line {lineno + 1}"))
                    continue
            records[k].append(obj)
            where[k].append(lineno)
        if errors:
            self.reject(errors, source=source)
        receipts = [self._submit(k, recs, source=source, index_map=where[k], raw_of=raw_of)
                    for k, recs in records.items()]
        return Receipt.merge(receipts, errors)

    # ------------------------------------------------------------- stats
    def stats(self) -> dict[str, dict[str, int]]:
        """Counters since start per kind: ``accepted``, ``duplicate``,
        ``late``, ``rejected:<code>``, ``subscriber_error``."""
        with self._lock:
            return {k: dict(c) for k, c in self._stats.items()}

    def watermark(self, kind: str) -> datetime | None:
        """Current watermark of ``kind`` (None before its first event)."""
        with self._lock:
            st = self._state.get(kind)
            if st is None:
                return None
            wm = st.watermark(_ms(_aware(self.clock())), self._lateness_ms(kind))
            return None if wm is None else datetime(1970, 1, 1, tzinfo=timezone.utc) + wm * _MS

    def seen_count(self, kind: str) -> int:
        """How many event ids of ``kind`` are remembered for de-duplication."""
        with self._lock:
            st = self._state.get(kind)
            return 0 if st is None else len(st.seen)


def _content_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """The fields in which two records of one event id differ (``source`` aside: the same
    event re-sent through another channel is the same event)."""
    out = []
    for k in a.keys() | b.keys():
        if k == "source":
            continue
        x, y = a.get(k), b.get(k)
        if x != y and not (isinstance(x, float) and isinstance(y, float) and x != x and y != y):
            out.append((k, x, y))
    return sorted(out, key=lambda d: d[0])


def _short(v: Any) -> str:
    t = v.isoformat() if isinstance(v, datetime) else repr(v)
    return t if len(t) <= 40 else t[:37] + "..."


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _times_ms(table: pa.Table) -> np.ndarray:
    col = table.column("event_time")
    if not pa.types.is_timestamp(col.type):
        return np.zeros(table.num_rows, dtype=np.int64)
    ms = pc.cast(col, pa.timestamp("ms", tz="UTC")) if col.type.unit != "ms" else col
    arr = pc.fill_null(ms.cast(pa.int64()), np.iinfo(np.int64).min)
    return np.asarray(arr.to_numpy(), dtype=np.int64)


# --------------------------------------------------------------- decoding


def _json_read_schema(kind: str) -> pa.Schema:
    """Schema for pyarrow's JSON reader: all nullable, times read as text (the
    validator parses them, refusing naive times like the dict path does)."""
    fields = []
    for f in SCHEMAS[kind]:
        t = pa.string() if pa.types.is_timestamp(f.type) else f.type
        fields.append(pa.field(f.name, t, nullable=True))
    return pa.schema(fields)


_JSON_SCHEMAS = {k: _json_read_schema(k) for k in SCHEMAS}


def _fast_ndjson(kind: str, body: bytes) -> pa.Table | None:
    """JSON lines read by pyarrow's reader when it can do so exactly: one
    object per line, every value of the expected JSON type.  Otherwise None and
    the caller reads line by line with Python (same results, slower).

    Guard rails, because the body comes from outside: pyarrow 26's JSON
    reader dereferences a null pointer when a block starts with a top-level
    ``null`` (apache/arrow#47409) and can build invalid list arrays from
    leading nulls in lists (apache/arrow#51305).  So the reader only sees
    bodies whose every line starts with ``{``, and its table must pass a
    full validation and have exactly one row per line.
    """
    if not body or body[:1] != b"{":
        return None
    n_lines = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
    if body.count(b"\n{") != n_lines - 1:          # a line not starting with '{'
        return None
    try:
        table = pajson.read_json(
            io.BytesIO(body),
            read_options=pajson.ReadOptions(use_threads=True, block_size=max(1 << 20, min(len(body) + 1, 1 << 26))),
            parse_options=pajson.ParseOptions(explicit_schema=_JSON_SCHEMAS[kind],
                                              unexpected_field_behavior="ignore"))
        if table.num_rows != n_lines:
            return None
        table.validate(full=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, pa.ArrowIndexError,
            UnicodeDecodeError, OverflowError, ValueError):
        return None
    return table


def read_arrow_stream(body: bytes) -> pa.Table:
    """An Arrow IPC stream body as a table; ``ValueError`` with a reason if it
    is not one (fully validated: the bytes come from outside)."""
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(body))
        table = reader.read_all()
        table.validate(full=True)
    except Exception as e:  # pyarrow raises several types on garbage
        raise ValueError(f"body is not a valid Arrow IPC stream ({type(e).__name__}: {str(e)[:200]})") from None
    return table
