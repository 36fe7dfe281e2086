"""Alert scenarios as data: tests/alert_scenarios/*.toml (input series -> expected transitions).

Each file is one rule, one input series and the exact list of transitions it
must produce - a domain expert can add one without writing Python.  Format::

    name = "a sentence saying what the scenario shows"
    start = 2025-05-01T10:00:00+08:00      # time of the first value
    interval = "1m"                        # between values
    series = "50 85+1x2 _ err stale nan"   # Prometheus-style values:
        # a number; `a+bxN` / `a-bxN` = N+1 values from a in steps of b;
        # `_` no data, `stale` a stale value, `err` an engine error,
        # `nan` a non-finite value; `_xN`, `errxN`, `stalexN` = N of them.

    [rule]                                 # the catalog defaults
    indicator = "crowd.load_rate:zone=west_plaza@1m"
    direction = "above"
    tiers = { yellow = 80, orange = 90 }
    [rule.override]                        # an override, as supervisors store it
    for = "2m"
    [calendars.holiday]                    # calendars of the overrides document
    dates = [2025-10-01]

    [[action]]                             # user actions, after the tick at `at`
    at = "3m"
    do = "acknowledge"                     # acknowledge | assign | silence | unsilence
    by = "li"
    comment = "on it"
    until = "8m"                           # silence only

    [[expect]]                             # EVERY event, in order
    at = "2m"
    event = "firing"
    tier = "yellow"                        # optional: tier after the event
    # optional: status, actor, silenced, level (escalation level), reason_contains

The test compares the whole event list, so an unexpected extra transition
fails as surely as a missing one.
"""
from __future__ import annotations

import math
import re
import tomllib
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from indicators.alerts.rules import RuleDefaults, build_rules, parse_duration
from indicators.alerts.state import Evaluation, acknowledge, assign, silence, transition, unsilence

DIR = Path(__file__).parent / "alert_scenarios"
FILES = sorted(DIR.glob("*.toml"))

_TOKEN = re.compile(r"^(-?\d+(?:\.\d+)?)([+-])(\d+(?:\.\d+)?)x(\d+)$")
_REPEAT = re.compile(r"^(_|err|stale|nan)x(\d+)$")


def expand(series: str) -> list[tuple[float | None, str]]:
    """Prometheus-style series -> [(value, quality)]."""
    out: list[tuple[float | None, str]] = []
    special = {"_": (None, "no_data"), "err": (None, "error"), "stale": (1.0, "stale"), "nan": (math.nan, "ok")}
    for tok in series.split():
        if tok in special:
            out.append(special[tok])
        elif m := _REPEAT.match(tok):
            out += [special[m[1]]] * int(m[2])
        elif m := _TOKEN.match(tok):
            a, step = float(m[1]), float(m[3]) * (1 if m[2] == "+" else -1)
            out += [(a + i * step, "ok") for i in range(int(m[4]) + 1)]
        else:
            out.append((float(tok), "ok"))
    return out


def _dates(x):
    """TOML dates -> ISO strings (the overrides document is JSON-able)."""
    if isinstance(x, dict):
        return {k: _dates(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_dates(v) for v in x]
    return x.isoformat() if isinstance(x, date) else x


def run_scenario(sc: dict) -> list[dict]:
    """Play a scenario; returns the produced events as comparable dicts."""
    r = sc["rule"]
    defaults = RuleDefaults(r["indicator"], r.get("direction", "above"), r["tiers"])
    doc = {"override": {r["indicator"]: _dates(r.get("override", {}))}}
    if "calendars" in sc:
        doc["calendars"] = _dates(sc["calendars"])
    rule = build_rules([defaults], doc)[r["indicator"]]
    start: datetime = sc["start"]
    step = timedelta(seconds=parse_duration(sc.get("interval", "1m")))
    off = lambda s: timedelta(seconds=parse_duration(s))  # noqa: E731
    actions = sorted(sc.get("action", []), key=lambda a: off(a["at"]))
    state, events = None, []
    timeline = [(start + i * step, 0, v) for i, v in enumerate(expand(sc["series"]))] + \
               [(start + off(a["at"]), 1, a) for a in actions]
    for at, kind, item in sorted(timeline, key=lambda x: (x[0], x[1])):
        if kind == 0:
            value, quality = item
            tr = transition(state, Evaluation(at, value, quality), rule, at)
        else:
            a = item
            if a["do"] == "acknowledge":
                tr = acknowledge(state, by=a["by"], comment=a.get("comment", ""), now=at)
            elif a["do"] == "assign":
                tr = assign(state, assignee=a["assignee"], by=a["by"], now=at)
            elif a["do"] == "silence":
                tr = silence(state, until=start + off(a["until"]), by=a["by"], comment=a.get("comment", ""), now=at)
            elif a["do"] == "unsilence":
                tr = unsilence(state, by=a["by"], now=at)
            else:
                raise ValueError(f"unknown action {a['do']!r}")
        state = tr.state
        for e in tr.events:
            mins = (e.at - start).total_seconds() / 60
            events.append({"at": f"{mins:g}m", "event": e.kind, "tier": e.to_tier, "status": e.to_status,
                           "actor": e.actor, "silenced": e.silenced, "reason": e.reason,
                           "level": state.escalation_level if e.kind == "escalated" else None})
    return events


def compare(produced: list[dict], expected: list[dict]) -> list[str]:
    """Differences between produced events and the expectations (empty = pass)."""
    problems = []
    for i in range(max(len(produced), len(expected))):
        if i >= len(expected):
            problems.append(f"unexpected event #{i}: {produced[i]}")
            continue
        if i >= len(produced):
            problems.append(f"missing event #{i}: {expected[i]}")
            continue
        p, x = produced[i], expected[i]
        at = x.get("at")
        if at is not None and parse_duration(at) != parse_duration(p["at"]):
            problems.append(f"event #{i}: at {p['at']}, expected {at} ({p})")
        for k in ("event", "tier", "status", "actor", "silenced", "level"):
            if k in x and x[k] != p[k]:
                problems.append(f"event #{i} ({p['event']} at {p['at']}): {k} = {p[k]!r}, expected {x[k]!r}")
        if "reason_contains" in x and x["reason_contains"] not in p["reason"]:
            problems.append(f"event #{i}: reason {p['reason']!r} lacks {x['reason_contains']!r}")
    return problems


def _load(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", FILES, ids=[_load(f)["name"] for f in FILES])
def test_scenario(path):
    sc = _load(path)
    produced = run_scenario(sc)
    problems = compare(produced, sc.get("expect", []))
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems) + "\nproduced:\n  " + \
        "\n  ".join(str(p) for p in produced)


def test_the_scenarios_cover_every_behaviour_the_brief_names():
    """Tiers, pending, hysteresis, keep-firing, no-data, error, schedules,
    acknowledgement and escalation each have at least one scenario."""
    kinds = {e["event"] for f in FILES for e in _load(f).get("expect", [])}
    assert {"pending", "firing", "tier_up", "tier_down", "recovering", "refiring", "resolved", "cancelled",
            "no_data", "error", "acknowledged", "escalated", "silenced", "unsilenced"} <= kinds
    text = " ".join(f.read_text(encoding="utf-8") for f in FILES)
    assert "recover" in text and "keep_firing_for" in text and "profiles" in text and "calendars" in text
    assert len(FILES) >= 12


def test_a_wrong_expectation_fails():
    """The runner can fail: shift one expected time and drop one event."""
    sc = _load(DIR / "pending.toml")
    produced = run_scenario(sc)
    wrong = [dict(e) for e in sc["expect"]]
    wrong[-1]["at"] = "99m"
    assert compare(produced, wrong)
    assert compare(produced, sc["expect"][:-1])
    assert compare(produced, sc["expect"] + [{"at": "9m", "event": "firing"}])


def test_series_notation_expands_like_prometheus():
    assert expand("1+2x3 _ 5-1x1 errx2 stale") == [
        (1.0, "ok"), (3.0, "ok"), (5.0, "ok"), (7.0, "ok"), (None, "no_data"), (5.0, "ok"), (4.0, "ok"),
        (None, "error"), (None, "error"), (1.0, "stale")]
