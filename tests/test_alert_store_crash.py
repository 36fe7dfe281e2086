"""The alert store survives kill -9; restart rebuilds the runtime; writes are
idempotent; the schema is plain SQL that PostgreSQL parses.

Crash trials: this file is also the child process
(``python tests/test_alert_store_crash.py CHILD DB SEED``; DB a SQLite path, or in the
PostgreSQL pass a ``postgresql://`` URL).  The child drives an
:class:`AlertRuntime` through a burst of ticks (40 indicators jumping between
tiers every minute, escalations, a compound rule opening a plan) and user
actions (acknowledgements, case reports, every step of the case loop), and
prints ``ACK <keys>`` - flushed - only after the store call returned.  The
parent SIGKILLs it at a random moment, restarts it (it rebuilds its state
from the store, retries its last reports and replays its last tick, which
must change nothing), kills it again, then checks that every acknowledged
transition, case step and plan event is in the store, none twice, and that
the history is consistent (contiguous sequence numbers per alert, case and
plan; one active alert per rule; no overlapping alert episodes).
"""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indicators.alerts import DATA_DIR  # noqa: E402
from indicators.alerts.cases import parse_case_config  # noqa: E402
from indicators.alerts.compound import AlertCondition, CompoundRule  # noqa: E402
from indicators.alerts.plans import parse_plans  # noqa: E402
from indicators.alerts.rules import RuleDefaults, build_rules  # noqa: E402
from indicators.alerts.runtime import AlertRuntime, ListNotifier  # noqa: E402
from indicators.alerts.state import Evaluation, transition  # noqa: E402
from indicators.alerts.store import DDL, WRITE_STATEMENTS, AlertStore, Batch  # noqa: E402

T0 = datetime(2025, 10, 1, 11, 0, tzinfo=timezone.utc)
N_IND = 40
TRIALS = 20
CYCLES = 2


# ============================================================================ the child's world
def world():
    """Rules, compound rules, plans and case config of the crash child (no inventory: fast start)."""
    defaults = [RuleDefaults(f"crowd.load_rate:zone=z{i}@1m", "above",
                             {"blue": 60, "yellow": 80, "orange": 90, "red": 100},
                             family="crowd.load_rate", labels={"zone": f"z{i}"}) for i in range(N_IND)]
    rules = build_rules(defaults, {"override": {d.indicator_id: {"for": "0s", "escalate_after": {"red": "2m"}}
                                                for d in defaults}})
    cfg, _ = parse_case_config(tomllib.loads((DATA_DIR / "departments.toml").read_text(encoding="utf-8")))
    plans, _ = parse_plans(tomllib.loads((DATA_DIR / "plans.toml").read_text(encoding="utf-8")))
    compound = [CompoundRule("z0_z1_red", "z0/z1 红色", "z0/z1 red", "red",
                             (AlertCondition("crowd.load_rate", {"zone": ("z0", "z1")}, "red"),),
                             plan="crowd_core", plan_level="I", keep_firing_s=120.0)]
    return rules, compound, plans, cfg


class TickClock:
    """User actions happen 30 s after the tick they follow."""

    def __init__(self):
        self.t = T0

    def __call__(self):
        return self.t


def values(seed: int, tick: int) -> dict:
    out = {}
    for i in range(N_IND):
        r = random.Random(seed * 1_000_003 + tick * 1000 + i).random()
        out[f"crowd.load_rate:zone=z{i}@1m"] = (50 + 56 * r, "ok")
    return out


def open_runtime(db: str):
    rules, compound, plans, cfg = world()
    clock = TickClock()
    store = AlertStore.open(db)
    rt = AlertRuntime(store, rules, compound, plans, clock, ListNotifier(), cases=cfg)
    return rt, clock, store


def drive(rt, clock, seed: int, ticks, say=lambda keys: None) -> None:
    """The deterministic workload; ``say`` gets the keys of each returned write."""
    for tick in ticks:
        at = T0 + timedelta(minutes=tick)
        clock.t = at
        res = rt.on_tick(at, values(seed, tick))
        say([e.key for e in res.events] + [s.key for s in res.case_steps] + [e.key for e in res.plan_events])
        clock.t = at + timedelta(seconds=30)
        firing = sorted((s for s in rt.states.values() if s.status == "firing" and not s.acked_by
                         and s.rule_id.startswith("crowd")), key=lambda s: s.alert_id)
        for s in firing[:2]:
            st = rt.acknowledge(s.alert_id, by="op", comment=f"seen at tick {tick}")
            say([f"{st.alert_id}#{st.seq}"])
        c = rt.report(request_id=f"t{tick}", category="litter", by="patrol", xy=None, zone_id="z0")
        say([f"{c.case_id}#1"])
        for case in sorted(rt.cases.values(), key=lambda c: c.case_id):
            if case.case_id == c.case_id:
                continue
            step = {"open": lambda i: rt.dispatch_case(i, by="op", to_staff="s1"),
                    "dispatched": lambda i: rt.handle_case(i, by="s1", note="cleaned"),
                    "verifying": lambda i: rt.verify_case(i, by="insp", passed=True, note="ok"),
                    "verified": lambda i: rt.close_case(i, by="op", note="closed")}[case.status]
            done = step(case.case_id)
            say([f"{done.case_id}#{done.seq}"])


def child(db: str, seed: int) -> None:
    rt, clock, store = open_runtime(db)
    last = rt.last_tick
    first = 0 if last is None else int((last - T0).total_seconds() // 60) + 1
    if last is not None:
        # retries after the crash: the last tick again (skipped), recent reports again (same cases)
        assert rt.on_tick(last, values(seed, first - 1)).skipped
        for t in range(max(0, first - 3), first):
            rt.report(request_id=f"t{t}", category="litter", by="patrol", zone_id="z0")
    out = sys.stdout
    out.write(f"READY {first}\n")
    out.flush()

    def say(keys):
        if keys:
            out.write("ACK " + " ".join(keys) + "\n")
            out.flush()
    drive(rt, clock, seed, range(first, first + 10_000), say)


# ============================================================================ the parent
def _run_cycle(db: str, seed: int, rng: random.Random, err: Path) -> set[str]:
    with open(err, "ab") as e:
        proc = subprocess.Popen([sys.executable, __file__, "CHILD", str(db), str(seed)], stdout=subprocess.PIPE,
                                stderr=e, env={**os.environ, "PYTHONHASHSEED": "0"})
    acked: set[str] = set()
    try:
        ready = proc.stdout.readline()
        assert ready.startswith(b"READY"), err.read_text()
        for _ in range(rng.randint(0, 40)):
            line = proc.stdout.readline()
            assert line.startswith(b"ACK"), err.read_text()
            acked.update(line.decode().split()[1:])
        try:
            proc.wait(timeout=rng.uniform(0.0, 0.03))
        except subprocess.TimeoutExpired:
            pass
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    for line in rest.splitlines():                      # flushed before the kill: acknowledged too
        if line.startswith(b"ACK"):
            acked.update(line.decode().split()[1:])
    assert proc.returncode == -signal.SIGKILL, err.read_text()
    return acked


def _check_store(db: str, acked: set[str]) -> dict:
    store = AlertStore.open(db)
    try:
        events = store.events()
        steps = store.case_steps()
        plan_events = store.plan_events()
        present = [e["key"] for e in events] + [s["key"] for s in steps] + [e["key"] for e in plan_events]
        assert len(present) == len(set(present))
        missing = acked - set(present)
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:5]}"
        by_obj = defaultdict(list)
        for e in events:
            by_obj["a:" + e["alert_id"]].append(e["seq"])
        for s in steps:
            by_obj["c:" + s["case_id"]].append(s["seq"])
        for e in plan_events:
            by_obj["p:" + e["instance_id"]].append(e["seq"])
        for k, seqs in by_obj.items():
            assert sorted(seqs) == list(range(1, len(seqs) + 1)), f"{k}: sequence {sorted(seqs)}"
        for s in steps:
            if s["step"] == "open":
                assert s["seq"] == 1
        # one active alert per rule, its snapshot agrees with its last event
        active = store.active_alerts()
        assert len({a.rule_id for a in active}) == len(active)
        last_seq = {k[2:]: max(v) for k, v in by_obj.items() if k.startswith("a:")}
        for a in active:
            assert a.seq == last_seq[a.alert_id], a.alert_id
        # episodes of one rule do not overlap: a lost state would start a second one
        spans = defaultdict(list)
        for e in events:
            spans[(e["rule_id"], e["alert_id"])].append(e["at"])
        per_rule = defaultdict(list)
        for (rid, aid), ats in spans.items():
            per_rule[rid].append((min(ats), max(ats), aid))
        for rid, eps in per_rule.items():
            eps.sort()
            for (a0, a1, x), (b0, b1, y) in zip(eps, eps[1:]):
                ended = any(e["alert_id"] == x and e["kind"] in ("resolved", "cancelled") for e in events)
                assert ended and a1 <= b0, f"{rid}: episode {y} starts before {x} ended"
        counts = store.counts()
        assert counts["audit"] == len(events) + len(steps) + len(plan_events)
        return counts
    finally:
        store.close()


def test_kill_9_during_a_burst_loses_no_acknowledged_write_and_duplicates_none(tmp_path, store_target):
    """On SQLite the child writes a file; in the PostgreSQL pass it opens a fresh database's URL."""
    rng = random.Random(20251001)
    t_start = time.monotonic()
    totals = defaultdict(int)
    for trial in range(TRIALS):
        db = store_target(f"trial{trial}")
        err = tmp_path / f"trial{trial}.err"
        acked: set[str] = set()
        for _ in range(CYCLES):
            acked |= _run_cycle(db, trial, rng, err)
        counts = _check_store(db, acked)
        totals["acked"] += len(acked)
        for k, v in counts.items():
            totals[k] += v
    assert time.monotonic() - t_start < 60
    # the trials did real work: transitions, case steps and plan events were written and acknowledged
    assert totals["acked"] > 500 and totals["alert_events"] > 500 and totals["case_steps"] > 40
    assert totals["plan_events"] > 0


# ============================================================================ restart, idempotence
def test_a_restarted_runtime_continues_exactly_like_one_that_never_stopped(tmp_path):
    a_rt, a_clock, a_store = open_runtime(str(tmp_path / "a.sqlite"))
    drive(a_rt, a_clock, 7, range(0, 12))
    a_store.close()
    b_rt, b_clock, b_store = open_runtime(str(tmp_path / "a.sqlite"))     # restart on the same store
    assert b_rt.last_tick == T0 + timedelta(minutes=11)
    assert {k: s.alert_id for k, s in b_rt.states.items()} == {k: s.alert_id for k, s in a_rt.states.items()}
    assert set(b_rt.cases) == set(a_rt.cases) and set(b_rt.plans) == set(a_rt.plans)
    drive(b_rt, b_clock, 7, range(12, 20))
    ref_rt, ref_clock, ref_store = open_runtime(str(tmp_path / "ref.sqlite"))
    drive(ref_rt, ref_clock, 7, range(0, 20))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "value"} for r in rows]  # noqa: E731
    assert strip(b_store.events()) == strip(ref_store.events())
    assert b_store.case_steps() == ref_store.case_steps()
    assert b_store.plan_events() == ref_store.plan_events()
    b_store.close()
    ref_store.close()


def test_retried_and_stale_writes_change_nothing(tmp_path):
    rules, *_ = world()
    rule = rules["crowd.load_rate:zone=z0@1m"]
    t1 = transition(None, Evaluation(T0, 85), rule, T0)
    t2 = transition(t1.state, Evaluation(T0 + timedelta(minutes=1), 95), rule, T0 + timedelta(minutes=1))
    store = AlertStore.open(tmp_path / "s.sqlite")
    b1 = Batch(alerts=[t1.state], events=list(t1.events))
    b2 = Batch(alerts=[t2.state], events=list(t2.events))
    store.apply(b1)
    store.apply(b2)
    before = store.counts()
    store.apply(b1)                                   # a retry of an old write after a newer one
    store.apply(b2)
    assert store.counts() == before
    (st,) = store.active_alerts()
    assert (st.tier, st.seq) == ("orange", 2)         # the older snapshot did not win
    store.close()


def test_an_unreachable_notifier_gets_every_message_later_even_after_a_restart(tmp_path):
    class Down:
        def send(self, m):
            raise ConnectionError("pager gateway down")

    rules, compound, plans, cfg = world()
    clock = TickClock()
    store = AlertStore.open(tmp_path / "n.sqlite")
    rt = AlertRuntime(store, rules, compound, plans, clock, Down(), cases=cfg)
    res = rt.on_tick(T0, {f"crowd.load_rate:zone=z{i}@1m": (95.0, "ok") for i in range(N_IND)})
    assert len(res.messages) >= N_IND and len(store.unsent_messages()) == len(res.messages)
    store.close()
    store = AlertStore.open(tmp_path / "n.sqlite")
    up = ListNotifier()
    rt2 = AlertRuntime(store, rules, compound, plans, clock, up, cases=cfg)
    assert rt2.flush_outbox() == len(res.messages)
    assert {m.key for m in up.sent} == {m.key for m in res.messages}
    assert store.unsent_messages() == []
    store.close()


# ============================================================================ portable SQL
def test_the_schema_is_plain_sql_that_postgresql_parses():
    """pglast wraps PostgreSQL's own parser (libpg_query): every CREATE and
    every write the store issues must parse; only TEXT, INTEGER, BIGINT and
    DOUBLE PRECISION are used; nothing SQLite-only."""
    import pglast

    types = set()
    for stmt in DDL:
        (raw,) = pglast.parse_sql(stmt)
        node = raw.stmt
        if type(node).__name__ == "CreateStmt":
            for col in node.tableElts:
                if type(col).__name__ == "ColumnDef":
                    types.add(".".join(n.sval for n in col.typeName.names))
    assert types <= {"text", "pg_catalog.int4", "pg_catalog.int8", "pg_catalog.float8"}, types
    for stmt in WRITE_STATEMENTS:
        n = iter(range(1, 100))
        pglast.parse_sql(re.sub(r"\?", lambda m: f"${next(n)}", stmt))
    text = " ".join(DDL + WRITE_STATEMENTS).upper()
    for sqlite_only in ("AUTOINCREMENT", "WITHOUT ROWID", "PRAGMA", "INSERT OR", "REPLACE INTO", "DATETIME("):
        assert sqlite_only not in text


def test_the_store_is_wal_with_full_sync(tmp_path):
    store = AlertStore.open(tmp_path / "w.sqlite")
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2          # FULL
    store.close()


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "CHILD":
    child(sys.argv[2], int(sys.argv[3]))
