"""Front ends of the ingestor: the HTTP router (FastAPI TestClient), the drop
directory, and a smoke run of the bench (not timed)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from indicators.feeds.bench import format_report, run_ingest_bench
from indicators.feeds.deadletter import DeadLetterStore
from indicators.feeds.dropdir import DropDir
from indicators.feeds.http import MAX_BODY, make_ingest_router
from indicators.feeds.ingest import Ingestor
from indicators.feeds.log import FeedLog
from indicators.feeds.schemas import SCHEMAS

UTC = timezone.utc
NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
NDJSON = {"content-type": "application/x-ndjson"}
ARROW = {"content-type": "application/vnd.apache.arrow.stream"}


def crowd(i: int, **kw) -> dict:
    r = {"event_id": f"c{i}", "event_time": "2025-05-01T11:58:00Z", "zone_id": "z-plaza", "count": i}
    r.update(kw)
    return r


def lines(*records) -> bytes:
    return ("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n").encode()


def arrow_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


class Env:
    def __init__(self, d: Path, max_body: int = MAX_BODY) -> None:
        self.log = FeedLog(d / "log")
        self.dead = DeadLetterStore(d / "dead.sqlite")
        self.ing = Ingestor(self.log, self.dead, clock=lambda: NOW)
        app = FastAPI()
        app.include_router(make_ingest_router(self.ing, max_body=max_body))
        self.client = TestClient(app)          # raises server errors: a 500 fails the test

    def ids(self) -> list[str]:
        return [e for _, _, t in self.log.replay() for e in t.column("event_id").to_pylist()]

    def close(self) -> None:
        self.client.close()
        self.log.close()
        self.dead.close()


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    e.close()


# ------------------------------------------------------------------- HTTP


def test_good_json_lines(env):
    r = env.client.post("/ingest/crowd", content=lines(crowd(1), crowd(2)), headers=NDJSON)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"], body["rejected"], body["seq"]) == (2, 0, [], 1)
    assert env.ids() == ["c1", "c2"]
    r = env.client.post("/ingest/crowd", content=lines(crowd(1)), headers={**NDJSON, "X-Feed-Source": "gates"})
    assert r.status_code == 200 and r.json()["duplicates"] == 1


def test_good_arrow_stream(env):
    t = pa.Table.from_pylist([crowd(i, event_time=NOW - timedelta(seconds=i)) for i in range(100)],
                             schema=SCHEMAS["crowd"])
    r = env.client.post("/ingest/crowd", content=arrow_bytes(t), headers=ARROW)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 100
    # a loosely typed stream (int64 counts, string times) is read like JSON
    loose = pa.table({"event_id": ["x1", "x2"], "event_time": ["2025-05-01T11:59:00Z"] * 2,
                      "zone_id": ["z", "z"], "count": pa.array([1, 2], pa.int64())})
    r = env.client.post("/ingest/crowd", content=arrow_bytes(loose), headers=ARROW)
    assert r.status_code == 200 and r.json()["accepted"] == 2


def test_some_bad_is_207_with_every_rejection(env):
    body = lines(crowd(1), crowd(2, count=-5), crowd(3)) + b"{not json\n" + lines(crowd(4, zone_id=None))
    r = env.client.post("/ingest/crowd", content=body, headers=NDJSON)
    assert r.status_code == 207, r.text
    j = r.json()
    assert j["accepted"] == 2
    assert [(x["index"], x["code"]) for x in j["rejected"]] == [(1, "out_of_range"), (3, "parse_error"),
                                                              (4, "missing_field")]
    assert all(x["reason"] for x in j["rejected"])
    counts = env.dead.counts()
    assert counts[("crowd", "out_of_range")] == 1 and counts[("crowd", "missing_field")] == 1


def test_all_bad_is_422(env):
    r = env.client.post("/ingest/video", content=lines({"event_id": "v"}, {"x": 1}), headers=NDJSON)
    assert r.status_code == 422
    assert len(r.json()["rejected"]) == 2


@pytest.mark.parametrize("body", [b"\x00\xff\xfe garbage", b"[1,2,3]\n", b"null\n", b"null", b" null\n",
                                  b'"x"\n', b"{}\n", b"{" * 10_000, b"\n\n{\n", b'{"a":1} null\n',
                                  b'{"event_id":"a","departments":[null,"x"]}\n', b"\xef\xbb\xbf{}\n"])
def test_garbage_json_lines_is_422_never_500(env, body):
    for path in ("/ingest/crowd", "/ingest/case", "/ingest"):
        r = env.client.post(path, content=body, headers=NDJSON)
        assert r.status_code == 422, (path, body[:40], r.text[:300])
        assert r.json()["rejected"]


@pytest.mark.parametrize("body", [b"", b"garbage", b"\xff\xff\xff\xff\x10\x00\x00\x00" + b"\x00" * 16,
                                  b"ARROW1\x00\x00"])
def test_garbage_arrow_is_422_never_500(env, body):
    r = env.client.post("/ingest/crowd", content=body, headers=ARROW)
    assert r.status_code == 422, r.text
    assert r.json()["rejected"][0]["code"] == "parse_error"
    assert env.dead.counts()[("crowd", "parse_error")] == 1


def test_arrow_with_wrong_types_is_422(env):
    t = pa.table({"event_id": ["a"], "event_time": pa.array([{"y": 1}]), "zone_id": [b"\x00"], "count": ["many"]})
    r = env.client.post("/ingest/crowd", content=arrow_bytes(t), headers=ARROW)
    assert r.status_code == 422
    assert r.json()["rejected"][0]["code"] == "bad_type"


def test_truncated_arrow_stream_is_422(env):
    data = arrow_bytes(pa.Table.from_pylist([crowd(i) for i in range(50)]))
    r = env.client.post("/ingest/crowd", content=data[: len(data) // 2], headers=ARROW)
    assert r.status_code == 422


@pytest.mark.parametrize("ctype", ["text/plain", "application/json", "application/octet-stream", None,
                                   "application/vnd.apache.arrow.file"])
def test_wrong_content_type_is_415(env, ctype):
    headers = {"content-type": ctype} if ctype else {}
    r = env.client.post("/ingest/crowd", content=lines(crowd(1)), headers=headers)
    assert r.status_code == 415
    assert env.ids() == []


def test_arrow_to_the_mixed_endpoint_is_415(env):
    r = env.client.post("/ingest", content=b"x", headers=ARROW)
    assert r.status_code == 415


def test_unknown_kind_is_404(env):
    r = env.client.post("/ingest/parking", content=lines(crowd(1)), headers=NDJSON)
    assert r.status_code == 404
    assert "crowd" in r.json()["known"]


def test_body_over_32_mib_is_413(env):
    big = b"x" * (MAX_BODY + 1)
    r = env.client.post("/ingest/crowd", content=big, headers=NDJSON)
    assert r.status_code == 413
    r = env.client.post("/ingest", content=big, headers=NDJSON)
    assert r.status_code == 413


def test_streamed_body_over_the_limit_is_413(tmp_path):
    e = Env(tmp_path, max_body=1000)
    try:
        def chunks():
            for _ in range(50):
                yield lines(crowd(1))
        r = e.client.post("/ingest/crowd", content=chunks(), headers=NDJSON)   # chunked, no length
        assert r.status_code == 413
        assert e.ids() == []
        assert e.client.post("/ingest/crowd", content=lines(crowd(1)), headers=NDJSON).status_code == 200
    finally:
        e.close()


def test_mixed_kinds_endpoint(env):
    body = lines({"kind": "crowd", **crowd(1)},
                 {"kind": "staff", "event_id": "s1", "event_time": "2025-05-01T11:59:00+08:00",
                  "staff_id": "p1", "lon": 113.32, "lat": 23.1},
                 {"kind": "parking", "event_id": "p"},
                 {"event_id": "nokind"},
                 {"kind": "crowd", **crowd(2, count="lots")})
    r = env.client.post("/ingest", content=body, headers={**NDJSON, "charset": "utf-8"})
    assert r.status_code == 207, r.text
    j = r.json()
    assert j["accepted"] == 2 and len(j["seqs"]) == 2          # one frame per kind
    assert [(x["index"], x["code"]) for x in j["rejected"]] == [(2, "unknown_kind"), (3, "missing_field"),
                                                              (4, "bad_type")]
    assert [x["kind"] for x in j["rejected"]] == ["parking", "(unknown)", "crowd"]
    assert sorted(env.ids()) == ["c1", "s1"]


def test_fast_and_slow_json_paths_agree(tmp_path):
    """The same records, once readable by pyarrow's JSON reader and once
    forced onto the Python path (a blank line), get the same verdicts."""
    records = [crowd(1), crowd(2, count=-1), crowd(3, event_time="2025-05-01T11:00:00"),
               crowd(4, zone_id=""), crowd(5, count=2.0), crowd(6, event_time="1999-01-01T00:00:00Z"),
               crowd(7, event_id="x" * 201), crowd(8, cell_id="c", extra={"nested": [1]})]
    results = []
    for i, body in enumerate([lines(*records), b"\n" + lines(*records)]):
        e = Env(tmp_path / f"e{i}")
        try:
            r = e.client.post("/ingest/crowd", content=body, headers=NDJSON)
            j = r.json()
            results.append((r.status_code, j["accepted"],
                            [(x["index"] - i, x["code"]) for x in j["rejected"]]))
        finally:
            e.close()
    assert results[0] == results[1]
    assert results[0][1] == 3


@settings(max_examples=150, deadline=None, database=None)
@given(st.one_of(st.binary(max_size=300),
                 st.lists(st.one_of(st.text(max_size=40),
                                    st.dictionaries(st.sampled_from(["event_id", "event_time", "zone_id", "count",
                                                                     "kind", "cell_id", "x"]),
                                                    st.one_of(st.none(), st.integers(), st.floats(),
                                                              st.text(max_size=10), st.booleans(),
                                                              st.lists(st.none(), max_size=2)),
                                                    max_size=6).map(json.dumps)),
                          max_size=6).map(lambda ls: "\n".join(ls).encode())),
       st.sampled_from(["/ingest/crowd", "/ingest"]),
       st.sampled_from([NDJSON, ARROW]))
def test_fuzzed_bodies_never_give_500(tmp_path_factory, body, path, headers):
    e = Env(tmp_path_factory.mktemp("fuzz"))
    try:
        r = e.client.post(path, content=body, headers=headers)
        assert r.status_code in (200, 207, 415, 422), r.text
        if r.status_code != 415:
            j = r.json()
            assert j["accepted"] + j["duplicates"] + j["late"] + len(j["rejected"]) >= 0
    finally:
        e.close()


def test_stats_endpoint(env):
    env.client.post("/ingest/crowd", content=lines(crowd(1), crowd(2, count=-1)), headers=NDJSON)
    j = env.client.get("/ingest/stats").json()
    assert j["ingested"]["crowd"]["accepted"] == 1
    assert {"kind": "crowd", "code": "out_of_range", "count": 1} in j["dead_letters"]


# --------------------------------------------------------------- drop dir


@dataclass
class _Parsed:
    tables: dict
    rejects: list
    notes: list = field(default_factory=list)


@dataclass
class _Reject:
    raw: object
    reason: str
    where: str


def test_drop_directory(tmp_path):
    e = Env(tmp_path / "env")
    try:
        def parse(data: bytes, name: str):
            if data.startswith(b"BOOM"):
                raise ValueError("cannot parse")
            rows = [crowd(int(x), event_time=NOW) for x in data.split()]
            return _Parsed({"crowd": pa.Table.from_pylist(rows)}, [_Reject(b"\x01", "bad entity", "entity[9]")])

        dd = DropDir(tmp_path / "drop", e.ing, parse=parse)
        inc = dd.incoming
        (inc / "a.jsonl").write_bytes(lines({"kind": "crowd", **crowd(1)}, {"kind": "crowd", **crowd(2, count=-1)}))
        (inc / "b.jsonl").write_bytes(lines({"kind": "crowd", **crowd(3, count=-1)}))
        t = pa.Table.from_pylist([crowd(10), crowd(11)])
        pq.write_table(t.replace_schema_metadata({"scenic_twin.kind": "crowd"}), inc / "meta.parquet")
        pq.write_table(t, inc / "nokind.parquet")
        with pa.OSFile(str(inc / "crowd-2025.arrow"), "wb") as f, pa.ipc.new_file(f, t.schema) as w:
            w.write_table(pa.Table.from_pylist([crowd(12)]))
        (inc / "crowd-stream.arrow").write_bytes(arrow_bytes(pa.Table.from_pylist([crowd(13)])))
        (inc / "feed.pb").write_bytes(b"20 21")
        (inc / "boom.pb").write_bytes(b"BOOM")
        (inc / "notes.txt.part").write_bytes(b"still being written")
        (inc / ".hidden.jsonl").write_bytes(b"{}")
        results = {r.name: r for r in dd.scan_once()}

        assert {n: r.status for n, r in results.items()} == {
            "a.jsonl": "done", "b.jsonl": "rejected", "meta.parquet": "done", "nokind.parquet": "rejected",
            "crowd-2025.arrow": "done", "crowd-stream.arrow": "done", "feed.pb": "done", "boom.pb": "rejected"}
        assert sorted(p.name for p in inc.iterdir()) == [".hidden.jsonl", "notes.txt.part"]
        assert sorted(e.ids()) == sorted(["c1", "c10", "c11", "c12", "c13", "c20", "c21"])
        assert (dd.rejected / "nokind.parquet").exists()
        assert "kind" in (dd.rejected / "nokind.parquet.reason.txt").read_text()
        assert "parser failed" in (dd.rejected / "boom.pb.reason.txt").read_text()
        assert "out_of_range" in (dd.done / "a.jsonl.reason.txt").read_text()
        assert not (dd.done / "meta.parquet.reason.txt").exists()
        letters = e.dead.list(limit=100)
        assert any(x["where"] == "entity[9]" for x in letters)
        assert any(x["kind"] == "(file)" and "nokind.parquet" in x["reason"] for x in letters)
        # a file dropped again (e.g. after a crash before the move) is harmless
        (inc / "a.jsonl").write_bytes(lines({"kind": "crowd", **crowd(1)}))
        again = dd.scan_once()
        assert again[0].status == "done" and again[0].receipt.duplicates == 1
        assert (dd.done / "a.jsonl.1").exists()
        assert dd.scan_once() == []
    finally:
        e.close()


def test_drop_directory_without_parser_rejects_unknown_formats(tmp_path):
    e = Env(tmp_path / "env")
    try:
        dd = DropDir(tmp_path / "drop", e.ing)
        (dd.incoming / "x.xml").write_text("<alert/>")
        (dd.incoming / "broken.parquet").write_bytes(b"PAR1 not really")
        res = {r.name: r.status for r in dd.scan_once()}
        assert res == {"x.xml": "rejected", "broken.parquet": "rejected"}
        assert "unsupported" in (dd.rejected / "x.xml.reason.txt").read_text()
    finally:
        e.close()


# ------------------------------------------------------------------ bench


def test_bench_smoke_runs_and_reports():
    calls = []

    def extra():
        t = pa.Table.from_pylist([crowd(i, event_time=NOW) for i in range(10)])
        data = arrow_bytes(t)

        def run(data: bytes, ing: Ingestor) -> int:
            calls.append(1)
            return ing.submit("crowd", pa.ipc.open_stream(data).read_all()).accepted
        return data, run

    r = run_ingest_bench(n_events=3000, batch_rows=1000, extra_cases={"extra": extra}, quiet=True)
    assert set(r["cases"]) == {"arrow_ipc", "jsonl", "extra"}
    assert r["cases"]["arrow_ipc"]["events"] == 3000 and r["cases"]["jsonl"]["events"] == 3000
    assert r["cases"]["extra"]["events"] == 10 and calls == [1]
    assert all(c["ratio_to_floor"] > 0 for c in r["cases"].values())
    assert "events/s" in format_report(r)
