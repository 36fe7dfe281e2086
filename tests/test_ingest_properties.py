"""Property tests of the ingest pipeline (Hypothesis).

Valid records of a few kinds and malformed ones (missing fields, wrong types,
out of range, garbage enums and ids, things that are not records at all) are
duplicated, shuffled and submitted in random chunks through random front
doors (dicts, JSON lines of one kind, mixed JSON lines).  Then:

* no exception;
* every bad record is in the dead-letter store, with a reason and a code;
* every good unique event is in the log exactly once (replay and compare);
* late events are in the late store - the expectation is computed by a
  small independent model of the watermark rule;
* after a restart (log replayed) nothing that was sent is accepted again.
"""
from __future__ import annotations

import json
import random
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indicators.feeds.deadletter import DeadLetterStore
from indicators.feeds.ingest import Ingestor
from indicators.feeds.log import FeedLog
from indicators.feeds.schemas import FACILITY_METRICS, VIDEO_ALGORITHMS
from indicators.feeds.validate import REASON_CODES

UTC = timezone.utc
NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
CST = timezone(timedelta(hours=8))
KINDS = ("crowd", "video", "facility", "staff")

text = st.text(min_size=1, max_size=12)


def _ms(dt: datetime) -> int:
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@st.composite
def event_time(draw):
    """A time within the last 3 hours, in one of the accepted spellings."""
    dt = NOW - timedelta(milliseconds=draw(st.integers(0, 3 * 3600 * 1000)))
    form = draw(st.sampled_from(["iso_z", "iso_cst", "datetime", "epoch_ms"]))
    if form == "iso_z":
        shown = dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    elif form == "iso_cst":
        shown = dt.astimezone(CST).isoformat(timespec="milliseconds")
    elif form == "datetime":
        shown = dt
    else:
        shown = _ms(dt)
    return _ms(dt), shown


@st.composite
def valid_record(draw, kind: str, tag: int):
    ms, shown = draw(event_time())
    rec = {"event_id": f"{draw(text)}#{tag}", "event_time": shown, "_tag": tag}
    if draw(st.booleans()):
        rec["source"] = draw(text)
    if kind == "crowd":
        rec.update(zone_id=draw(text), count=draw(st.integers(0, 10**6)))
        if draw(st.booleans()):
            rec["cell_id"] = draw(text)
    elif kind == "video":
        rec.update(camera_id=draw(text), algorithm=draw(st.sampled_from(VIDEO_ALGORITHMS)),
                   confidence=draw(st.floats(0, 1)))
        if draw(st.booleans()):
            rec.update(lon=draw(st.floats(-180, 180)), lat=draw(st.floats(-90, 90)),
                       object_count=draw(st.integers(0, 1000)))
    elif kind == "facility":
        metric = draw(st.sampled_from(sorted(FACILITY_METRICS)))
        # a bool metric (lamp_on, maintenance …) takes 0 or 1 only
        value = draw(st.sampled_from([0, 1])) if FACILITY_METRICS[metric].startswith("bool") else draw(st.floats(0, 1))
        rec.update(asset_id=draw(text), metric=metric, value=value)
    else:
        rec.update(staff_id=draw(text), lon=draw(st.floats(-180, 180)), lat=draw(st.floats(-90, 90)))
        if draw(st.booleans()):
            rec["status"] = draw(st.sampled_from(["available", "busy", "offline"]))
    return ms, rec


REQUIRED = {"crowd": ["event_id", "event_time", "zone_id", "count"],
            "video": ["event_id", "event_time", "camera_id", "algorithm", "confidence"],
            "facility": ["event_id", "event_time", "asset_id", "metric", "value"],
            "staff": ["event_id", "event_time", "staff_id", "lon", "lat"]}
NUMERIC = {"crowd": ["count"], "video": ["confidence"], "facility": ["value"], "staff": ["lon", "lat"]}
OUT_OF_RANGE = {"crowd": ("count", st.integers(-10**6, -1)),
                "video": ("confidence", st.floats(1.0001, 1e6)),
                "facility": None,
                "staff": ("lat", st.floats(90.001, 1e9))}
ENUM = {"video": "algorithm", "facility": "metric", "staff": "status"}


@st.composite
def malformed_record(draw, kind: str, tag: int):
    _, rec = draw(valid_record(kind, tag))
    how = draw(st.sampled_from(["missing", "type", "range", "enum", "id", "time", "garbage_time"]))
    if how == "missing":
        del rec[draw(st.sampled_from(REQUIRED[kind]))]
    elif how == "type":
        rec[draw(st.sampled_from(NUMERIC[kind]))] = draw(st.one_of(
            text.map(lambda s: "x" + s), st.lists(st.integers(), max_size=2), st.dictionaries(text, st.integers(),
                                                                                             max_size=2)))
    elif how == "range" and OUT_OF_RANGE[kind]:
        name, strat = OUT_OF_RANGE[kind]
        rec[name] = draw(strat)
    elif how == "range":                          # facility: a ratio metric above 1
        rec.update(metric="bin_fill", value=draw(st.floats(1.001, 100)))
    elif how == "enum" and kind in ENUM:
        rec[ENUM[kind]] = "zz_" + draw(text)
    elif how == "id" or how == "enum":
        rec["event_id"] = draw(st.sampled_from(["", "x" * 201]))
    elif how == "time":
        rec["event_time"] = draw(st.sampled_from(["1999-12-31T23:59:59Z", "2025-05-03T00:00:00Z",
                                                  "2025-05-01T11:00:00"]))
    else:
        rec["event_time"] = "t" + draw(text)
    return rec


GARBAGE = st.sampled_from(["garbage", 42, None, [1, 2, 3], 3.5, True])


@dataclass
class Item:
    kind: str
    record: object
    good: bool
    ms: int | None = None
    tag: int | None = None


@st.composite
def scenario(draw):
    items: list[Item] = []
    tag = 0
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(KINDS))
        ms, rec = draw(valid_record(kind, tag))
        items.append(Item(kind, rec, True, ms, tag))
        tag += 1
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(KINDS))
        items.append(Item(kind, draw(malformed_record(kind, tag)), False, None, tag))
        tag += 1
    for _ in range(draw(st.integers(0, 3))):
        items.append(Item(draw(st.sampled_from(KINDS)), draw(GARBAGE), False))
    goods = [it for it in items if it.good]
    if goods:                                       # exact re-sends
        items += draw(st.lists(st.sampled_from(goods), max_size=15))
    items = draw(st.permutations(items))
    chunks = []
    rest = list(items)
    while rest:
        k = draw(st.integers(1, 15))
        chunks.append((draw(st.sampled_from(["dicts", "ndjson_kind", "ndjson_mixed"])), rest[:k]))
        rest = rest[k:]
    lateness = draw(st.sampled_from([timedelta(0), timedelta(minutes=5), timedelta(minutes=45),
                                     timedelta(hours=6)]))
    return chunks, lateness


@dataclass
class Model:
    """Independent statement of the rules: first occurrence wins, late if
    older than min(max accepted time, now) - lateness (per kind, before the
    batch), duplicates of accepted ids are dropped."""

    lateness_ms: int
    accepted: dict[str, list[str]] = field(default_factory=dict)
    late: dict[str, set[str]] = field(default_factory=dict)
    max_ms: dict[str, int] = field(default_factory=dict)

    def batch(self, kind: str, goods: list[Item]) -> None:
        acc = self.accepted.setdefault(kind, [])
        seen_batch: set[str] = set()
        wm = None
        if kind in self.max_ms:
            wm = min(self.max_ms[kind], _ms(NOW)) - self.lateness_ms
        new = []
        for it in goods:
            eid = it.record["event_id"]  # type: ignore[index]
            if eid in seen_batch:
                continue
            seen_batch.add(eid)
            if wm is not None and it.ms < wm:  # type: ignore[operator]
                self.late.setdefault(kind, set()).add(eid)
            elif eid not in acc:
                new.append(it)
        acc.extend(it.record["event_id"] for it in new)  # type: ignore[index]
        if new:
            self.max_ms[kind] = max([self.max_ms.get(kind, -2**62)] + [it.ms for it in new])  # type: ignore[misc]


def _jsonable(rec: object) -> object:
    if isinstance(rec, dict):
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in rec.items()}
    return rec


def _submit_chunk(ing: Ingestor, mode: str, chunk: list[Item]) -> list:
    receipts = []
    by_kind: dict[str, list[Item]] = {}
    for it in chunk:
        by_kind.setdefault(it.kind, []).append(it)
    if mode == "dicts":
        for kind, its in by_kind.items():
            receipts.append(ing.submit(kind, [it.record for it in its], source="prop"))
    elif mode == "ndjson_kind":
        for kind, its in by_kind.items():
            body = "\n".join(json.dumps(_jsonable(it.record), ensure_ascii=False) for it in its).encode()
            receipts.append(ing.submit_ndjson(body, kind=kind, source="prop"))
    else:
        lines = []
        for it in chunk:
            rec = _jsonable(it.record)
            if isinstance(rec, dict):
                rec = {"kind": it.kind, **rec}
            lines.append(json.dumps(rec, ensure_ascii=False))
        receipts.append(ing.submit_ndjson(("\n".join(lines) + "\n").encode(), source="prop"))
    return receipts


def _model_batches(mode: str, chunk: list[Item]) -> list[tuple[str, list[Item]]]:
    """The per-kind batches the pipeline sees for one chunk (order kept)."""
    by_kind: dict[str, list[Item]] = {}
    for it in chunk:
        if it.good:
            by_kind.setdefault(it.kind, []).append(it)
    return list(by_kind.items())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario())
def test_pipeline_properties(sc):
    chunks, lateness = sc
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        log = FeedLog(d / "log", segment_bytes=4096)
        dead = DeadLetterStore(d / "dead.sqlite")
        ing = Ingestor(log, dead, allowed_lateness=lateness, clock=lambda: NOW)
        published: list[tuple[int, str, list[str]]] = []
        ing.subscribe(lambda seq, kind, t: published.append((seq, kind, t.column("event_id").to_pylist())))
        model = Model(lateness // timedelta(milliseconds=1))
        n_bad = 0
        bad_tags: set[int] = set()
        receipts = []
        for mode, chunk in chunks:
            receipts += _submit_chunk(ing, mode, chunk)          # must not raise
            for kind, goods in _model_batches(mode, chunk):
                model.batch(kind, goods)
            for it in chunk:
                if not it.good:
                    n_bad += 1
                    if it.tag is not None:
                        bad_tags.add(it.tag)

        # every bad record is in the dead-letter store, with a reason and a code
        letters = dead.list(limit=10**6)
        assert len(letters) == n_bad
        assert sum(len(r.rejected) for r in receipts) == n_bad
        assert all(x["reason"] and x["code"] in REASON_CODES for x in letters)
        found_tags = set()
        for x in letters:
            try:
                obj = json.loads(x["raw"])
            except ValueError:
                continue
            if isinstance(obj, dict) and "_tag" in obj:
                found_tags.add(obj["_tag"])
        assert found_tags == bad_tags

        # every good unique event is in the log exactly once
        logged: dict[str, list[str]] = {}
        for seq, kind, table in log.replay():
            logged.setdefault(kind, []).extend(table.column("event_id").to_pylist())
            assert table.column("source").null_count == 0
        for kind in KINDS:
            got = logged.get(kind, [])
            assert len(got) == len(set(got)), "an event was logged twice"
            assert sorted(got) == sorted(model.accepted.get(kind, []))
            assert dead.late_ids(kind) == model.late.get(kind, set())
        assert sum(r.accepted for r in receipts) == sum(len(v) for v in logged.values())
        assert [p[0] for p in published] == list(range(1, log.last_seq + 1))
        assert sorted(e for p in published for e in p[2]) == sorted(e for v in logged.values() for e in v)

        # restart: the seen ids come back from the log; nothing is accepted twice
        log.close()
        log2 = FeedLog(d / "log", segment_bytes=4096)
        ing2 = Ingestor(log2, dead, allowed_lateness=lateness, clock=lambda: NOW)
        goods = [it for _, chunk in chunks for it in chunk if it.good]
        for kind in KINDS:
            recs = [it.record for it in goods if it.kind == kind]
            if recs:
                r = ing2.submit(kind, recs, source="again")
                assert r.accepted == 0 and r.rejected == []
        log2.close()
        dead.close()


def test_seen_ids_stay_bounded_by_the_watermark():
    """Ids older than the watermark are forgotten, and re-sends of them are
    then late (kept aside), never accepted twice."""
    clock = [NOW]
    with tempfile.TemporaryDirectory() as d:
        log = FeedLog(Path(d) / "log")
        dead = DeadLetterStore(Path(d) / "dead.sqlite")
        ing = Ingestor(log, dead, allowed_lateness=timedelta(minutes=5), clock=lambda: clock[0])
        first = []
        for minute in range(60):
            t = NOW + timedelta(minutes=minute)
            clock[0] = t
            batch = [{"event_id": f"m{minute}-{i}", "event_time": t, "zone_id": "z", "count": i} for i in range(50)]
            first.append(batch)
            assert ing.submit("crowd", batch).accepted == 50
        assert ing.seen_count("crowd") <= 50 * 7          # ~5 minutes of ids, not 60
        again = ing.submit("crowd", first[0] + first[-1])
        assert (again.accepted, again.duplicates, again.late) == (0, 50, 50)
        assert len(dead.late_ids("crowd")) == 50
        rng = random.Random(3)
        replayed = [e for _, _, t in log.replay() for e in t.column("event_id").to_pylist()]
        assert len(replayed) == len(set(replayed)) == 3000
        assert rng.choice(replayed) in {r["event_id"] for b in first for r in b}
        log.close()
        dead.close()


def test_parsed_like_results_are_ingested_and_rejects_dead_lettered():
    @dataclass
    class Reject:
        raw: object
        reason: str
        where: str

    @dataclass
    class Parsed:
        tables: dict
        rejects: list
        notes: list = field(default_factory=list)

    with tempfile.TemporaryDirectory() as d:
        log = FeedLog(Path(d) / "log")
        dead = DeadLetterStore(Path(d) / "dead.sqlite")
        ing = Ingestor(log, dead, clock=lambda: NOW)
        import pyarrow as pa
        t = pa.Table.from_pylist([{"event_id": "b1", "event_time": NOW, "vehicle_id": "v1", "lat": 23.1, "lon": 113.3}])
        p = Parsed({"bus": t}, [Reject(b"\x08\x96\x01\xff", "entity 3: vehicle position without a vehicle id",
                                       "entity[3]"), Reject("{}", "protobuf decode error", "feed")])
        r = ing.submit_parsed(p, source="gtfs-rt:test")
        assert (r.accepted, len(r.rejected), r.seq) == (1, 2, 1)
        letters = dead.list()
        assert {x["where"] for x in letters} == {"entity[3]", "feed"}
        assert {x["kind"] for x in letters} == {"bus"}
        assert all(x["source"] == "gtfs-rt:test" for x in letters)
        assert dead.counts()[("bus", "parse_error")] == 2
        log.close()
        dead.close()


def test_concurrent_submits_accept_each_event_once():
    """Threads submitting overlapping batches: every id is logged once and the
    receipts add up (the ingest lock serialises de-duplication)."""
    import threading

    with tempfile.TemporaryDirectory() as d:
        log = FeedLog(Path(d) / "log")
        dead = DeadLetterStore(Path(d) / "dead.sqlite")
        ing = Ingestor(log, dead, allowed_lateness=timedelta(days=1), clock=lambda: NOW)
        receipts = []
        barrier = threading.Barrier(4)

        def worker(w: int) -> None:
            rng = random.Random(w)
            barrier.wait()
            for b in range(25):
                ids = rng.sample(range(400), 40)
                recs = [{"event_id": f"e{i}", "event_time": NOW - timedelta(seconds=i), "zone_id": "z", "count": i}
                        for i in ids]
                receipts.append(ing.submit("crowd", recs, source=f"w{w}"))

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        logged = [e for _, _, t in log.replay() for e in t.column("event_id").to_pylist()]
        assert len(logged) == len(set(logged))
        assert sum(r.accepted for r in receipts) == len(logged)
        assert sum(r.accepted + r.duplicates for r in receipts) == 4 * 25 * 40
        assert ing.stats()["crowd"]["accepted"] == len(logged)
        log.close()
        dead.close()


def test_empty_batches_are_fine():
    with tempfile.TemporaryDirectory() as d:
        log = FeedLog(Path(d) / "log")
        dead = DeadLetterStore(Path(d) / "dead.sqlite")
        ing = Ingestor(log, dead, clock=lambda: NOW)
        import pyarrow as pa
        from indicators.feeds.schemas import SCHEMAS
        for records in ([], SCHEMAS["crowd"].empty_table(), pa.table({})):
            r = ing.submit("crowd", records)
            assert (r.accepted, r.duplicates, r.late, r.rejected, r.seq) == (0, 0, 0, [], None)
        assert ing.submit_ndjson(b"").received == 0 and ing.submit_ndjson(b"\n\n", kind="crowd").received == 0
        assert log.last_seq == 0
        log.close()
        dead.close()


def test_dead_letters_and_late_events_older_than_the_retention_are_pruned_the_rest_stay(tmp_path):
    """The service keeps 30 days of rejected records (its clock): older rows go, newer stay and
    still count; the store opened again keeps what was left."""
    from types import SimpleNamespace
    t0 = datetime(2025, 10, 1, tzinfo=timezone.utc)
    dead = DeadLetterStore(tmp_path / "dead.sqlite")
    bad = [SimpleNamespace(raw={"n": i}, reason="zone_id 'x' is not in the inventory", kind="crowd")
           for i in range(3)]
    dead.put(bad, received_at=t0)
    dead.put(bad[:1], received_at=t0 + timedelta(days=20))
    dead.put_late("gate", [{"event_id": "g1", "event_time": t0}], watermark=t0, received_at=t0)
    dead.put_late("gate", [{"event_id": "g2", "event_time": t0}], watermark=t0, received_at=t0 + timedelta(days=20))
    assert dead.prune(t0 + timedelta(days=10)) == 4
    assert sum(n for (k, c), n in dead.counts().items() if k == "crowd") == 1
    assert [r["event_id"] for r in dead.list_late("gate")] == ["g2"]
    dead.close()
    again = DeadLetterStore(tmp_path / "dead.sqlite")
    assert len(again.list("crowd")) == 1 and again.prune(t0 + timedelta(days=10)) == 0
    again.close()
