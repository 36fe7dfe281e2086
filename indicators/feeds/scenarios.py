"""Scenario catalogue of the feed simulator: ``data/scenarios.toml`` read and checked.

A scenario is data: the magnitudes that make a simulated day look like a
normal Wednesday, a National Day evening or a typhoon.  Every number in the
file is a table ``{ value = ..., source = "..." }`` whose source is either a
published fact (FACTS.md, domain.md, a standard) or ``"ASSUMPTION: why"`` -
so a reviewer can tell a measured magnitude from a guess.  :func:`load`
refuses a bare number, a missing source, an unknown base scenario or an
unreadable time, and reports *every* problem with its path, not the first.

``[defaults]`` describes the normal-weekday world; ``[scenarios.NAME]`` is
deep-merged over its ``base`` (another scenario, or the defaults): tables
merge key by key, a sourced value or a list replaces what it overrides.

Episodes (rain and wind knots, warning signals, failures, notices) are
placed with ``at = "dN HH:MM"``: local day N relative to the local date of
the scenario's default ``start``.  :meth:`Scenario.episode_anchor` moves the
whole episode to the date of a simulation that starts more than a day away
from it, so ``--start`` on another date still shows the storm.
"""
from __future__ import annotations

import copy
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from .schemas import CASE_CATEGORIES, WARNING_COLOURS, WARNING_SIGNALS

__all__ = ["Scenario", "Catalog", "ScenarioError", "load", "scenarios_path", "parse_at", "parse_hhmm",
           "LOCAL"]

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL = timezone(timedelta(hours=8), "Asia/Shanghai")   # China Standard Time, no DST
_AT = re.compile(r"^d(-?\d+) (\d{2}):(\d{2})$")
_HHMM = re.compile(r"^(\d{2}):(\d{2})$")
_STATUSES = ("issued", "updated", "cancelled")
_FAILURE_EFFECTS = ("pressure_loss", "lamp_dark", "cover_displaced", "camera_offline", "stopped")


class ScenarioError(ValueError):
    """The scenario file is wrong; ``problems`` lists every problem with its path."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))


def scenarios_path() -> Path:
    """``scenarios.toml`` in ``SCENIC_TWIN_DATA`` if it has one, else the repository's ``data/``."""
    env = os.environ.get("SCENIC_TWIN_DATA")
    if env and (Path(env) / "scenarios.toml").is_file():
        return Path(env) / "scenarios.toml"
    return REPO_ROOT / "data" / "scenarios.toml"


def parse_hhmm(text: str) -> int:
    """``"HH:MM"`` (00:00-24:00) as minutes after local midnight."""
    m = _HHMM.match(text) if isinstance(text, str) else None
    if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59 or (int(m.group(1)) == 24 and int(m.group(2))):
        raise ValueError(f"{text!r} is not a local time HH:MM")
    return int(m.group(1)) * 60 + int(m.group(2))


def parse_at(text: str) -> tuple[int, int]:
    """``"dN HH:MM"`` as (day offset N, minutes after local midnight)."""
    m = _AT.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not a time 'dN HH:MM' (e.g. 'd0 14:05')")
    try:
        return int(m.group(1)), parse_hhmm(f"{m.group(2)}:{m.group(3)}")
    except ValueError:
        raise ValueError(f"{text!r}: {m.group(2)}:{m.group(3)} is not a local time HH:MM") from None


def _is_sourced(node: Any) -> bool:
    return isinstance(node, dict) and "value" in node and set(node) <= {"value", "source"}


def _check(node: Any, path: str, problems: list[str]) -> None:
    """Every number sits in the ``value`` of a table with a non-empty ``source``."""
    if isinstance(node, dict):
        if _is_sourced(node):
            src = node.get("source")
            if not isinstance(src, str) or not src.strip():
                problems.append(f"{path}: value {node['value']!r} has no source (add source = \"...\" "
                                f"naming a published fact or 'ASSUMPTION: why')")
            return
        if "source" in node and "value" not in node and all(not isinstance(v, dict) for v in node.values()):
            if any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in node.values()):
                problems.append(f"{path}: has a source but no value")
        for k, v in node.items():
            if k == "source" and isinstance(v, str):
                continue
            _check(v, f"{path}.{k}" if path else str(k), problems)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check(v, f"{path}[{i}]", problems)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        problems.append(f"{path}: the number {node!r} has no source; write {{ value = {node!r}, "
                        f"source = \"...\" }}")


def _merge(base: Any, over: Any) -> Any:
    """Deep merge: tables key by key; sourced values, lists and scalars replace."""
    if isinstance(base, dict) and isinstance(over, dict) and not _is_sourced(over) and not _is_sourced(base):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _plain(node: Any) -> Any:
    """The tree with every sourced table replaced by its value."""
    if _is_sourced(node):
        return node["value"]
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _sources(node: Any, path: str, out: dict[str, str]) -> None:
    if _is_sourced(node):
        out[path] = node.get("source", "")
    elif isinstance(node, dict):
        for k, v in node.items():
            _sources(v, f"{path}.{k}" if path else k, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _sources(v, f"{path}[{i}]", out)


@dataclass(frozen=True)
class Scenario:
    """One merged scenario: plain ``params`` plus the ``sources`` of its numbers."""

    name: str
    description: str
    start: datetime                     # default start (aware)
    check_start: datetime               # the characteristic hour the tests and docs describe
    params: dict[str, Any]
    sources: dict[str, str] = field(repr=False)

    def get(self, path: str, default: Any = None) -> Any:
        """A parameter by dotted path (``"crowd.daily_visitors"``)."""
        node: Any = self.params
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def num(self, path: str) -> Any:
        """A required parameter (KeyError naming the path when absent)."""
        v = self.get(path)
        if v is None:
            raise KeyError(f"scenario {self.name!r} has no parameter {path!r}")
        return v

    @property
    def expect(self) -> dict[str, Any]:
        """The realistic ranges of the check hour (plain values)."""
        return self.params.get("expect", {})

    @property
    def reference_date(self) -> date:
        return self.start.astimezone(LOCAL).date()

    def episode_days(self) -> tuple[int, int] | None:
        """(first, last) day offsets used by the episode events, or None."""
        days = [parse_at(a)[0] for a in self._episode_ats()]
        return (min(days), max(days)) if days else None

    def _episode_ats(self) -> Iterator[str]:
        for key in ("weather.rain_mm_h", "weather.wind_extra_ms"):
            for knot in self.get(key, []) or []:
                yield knot[0]
        for key in ("warnings", "failure", "notices"):
            for ev in self.params.get(key, []) or []:
                yield ev["at"]

    def episode_anchor(self, start: datetime) -> date:
        """The local date that day 0 of the episode falls on for a run from ``start``.

        The scenario's own reference date when ``start`` is within a day of
        the episode (so runs around the default start see the same storm);
        otherwise the episode is moved to ``start``'s local date.
        """
        ref = self.reference_date
        d = start.astimezone(LOCAL).date()
        span = self.episode_days() or (0, 0)
        if ref + timedelta(days=span[0] - 1) <= d <= ref + timedelta(days=span[1] + 1):
            return ref
        return d

    def at_time(self, at: str, anchor: date) -> datetime:
        """An ``"dN HH:MM"`` episode time as an aware UTC datetime."""
        day, minute = parse_at(at)
        midnight = datetime(anchor.year, anchor.month, anchor.day, tzinfo=LOCAL)
        return (midnight + timedelta(days=day, minutes=minute)).astimezone(timezone.utc)


class Catalog:
    """All scenarios of a file, in file order."""

    def __init__(self, scenarios: dict[str, Scenario], path: Path, shared_expect: tuple[str, ...] = ()) -> None:
        self._s = scenarios
        self.path = path
        self.shared_expect = shared_expect       # the [defaults.expect] measures every scenario shares

    @property
    def names(self) -> list[str]:
        return list(self._s)

    def __contains__(self, name: object) -> bool:
        return name in self._s

    def __iter__(self) -> Iterator[Scenario]:
        return iter(self._s.values())

    def __getitem__(self, name: str) -> Scenario:
        try:
            return self._s[name]
        except KeyError:
            raise KeyError(f"unknown scenario {name!r}; known: {', '.join(self._s)}") from None


def _aware(text: Any, path: str, problems: list[str]) -> datetime | None:
    try:
        t = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        problems.append(f"{path}: {text!r} is not an ISO 8601 date-time")
        return None
    if t.tzinfo is None:
        problems.append(f"{path}: {text!r} has no UTC offset (write e.g. +08:00)")
        return None
    return t


def _check_events(name: str, params: dict, problems: list[str]) -> None:
    for i, w in enumerate(params.get("warnings", []) or []):
        p = f"scenarios.{name}.warnings[{i}]"
        if w.get("signal") not in WARNING_SIGNALS:
            problems.append(f"{p}.signal: {w.get('signal')!r} is not one of {', '.join(WARNING_SIGNALS)}")
        if w.get("colour") not in WARNING_COLOURS:
            problems.append(f"{p}.colour: {w.get('colour')!r} is not one of {', '.join(WARNING_COLOURS)}")
        if w.get("status") not in _STATUSES:
            problems.append(f"{p}.status: {w.get('status')!r} is not one of {', '.join(_STATUSES)}")
    for key in ("warnings", "failure", "notices"):
        for i, ev in enumerate(params.get(key, []) or []):
            try:
                parse_at(ev.get("at"))
            except ValueError as e:
                problems.append(f"scenarios.{name}.{key}[{i}].at: {e}")
    for i, f in enumerate(params.get("failure", []) or []):
        if f.get("effect") not in _FAILURE_EFFECTS:
            problems.append(f"scenarios.{name}.failure[{i}].effect: {f.get('effect')!r} is not one of "
                            f"{', '.join(_FAILURE_EFFECTS)}")
        if not (f.get("asset") or f.get("line")):
            problems.append(f"scenarios.{name}.failure[{i}]: needs an asset or a line")
    for i, n in enumerate(params.get("notices", []) or []):
        if n.get("category") not in CASE_CATEGORIES:
            problems.append(f"scenarios.{name}.notices[{i}].category: {n.get('category')!r} is not a case category")
    for key in ("rain_mm_h", "wind_extra_ms"):
        for i, knot in enumerate((params.get("weather", {}) or {}).get(key, []) or []):
            try:
                parse_at(knot[0])
                float(knot[1])
            except (ValueError, TypeError, IndexError) as e:
                problems.append(f"scenarios.{name}.weather.{key}[{i}]: {knot!r} is not [\"dN HH:MM\", number] ({e})")


def load(path: str | os.PathLike[str] | None = None) -> Catalog:
    """Read, check and merge the scenario file; :class:`ScenarioError` lists every problem."""
    path = Path(path) if path is not None else scenarios_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no scenario file at {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(path, [f"not valid TOML: {e}"]) from None
    problems: list[str] = []
    _check(raw, "", problems)
    defaults = raw.get("defaults")
    scen = raw.get("scenarios")
    if not isinstance(defaults, dict):
        problems.append("[defaults] is missing")
        defaults = {}
    if not isinstance(scen, dict) or not scen:
        problems.append("[scenarios.NAME] tables are missing")
        scen = {}
    merged: dict[str, dict] = {}

    def resolve(name: str, seen: tuple[str, ...]) -> dict:
        if name in merged:
            return merged[name]
        own = scen[name]
        base_name = own.get("base")
        if base_name is None:
            base = defaults
        elif base_name not in scen:
            problems.append(f"scenarios.{name}.base: unknown scenario {base_name!r}")
            base = defaults
        elif base_name in seen:
            problems.append(f"scenarios.{name}.base: circular ({' -> '.join(seen + (base_name,))})")
            base = defaults
        else:
            base = resolve(base_name, seen + (base_name,))
        # the base's own identity (description, start, expect, episodes) is not inherited
        base = {k: v for k, v in base.items()
                if k not in ("description", "start", "check_start", "expect", "base")}
        tree = _merge(base, {k: v for k, v in own.items() if k not in ("base", "expect")})
        # expectations: the defaults' (fixed-cadence feeds) plus the scenario's own, never a base scenario's
        tree["expect"] = _merge(defaults.get("expect", {}) or {}, own.get("expect", {}) or {})
        merged[name] = tree
        return merged[name]

    out: dict[str, Scenario] = {}
    for name in scen:
        tree = resolve(name, (name,))
        for key in ("description", "start", "check_start"):
            if key not in tree:
                problems.append(f"scenarios.{name}.{key} is missing")
        start = _aware(tree.get("start"), f"scenarios.{name}.start", problems)
        check = _aware(tree.get("check_start"), f"scenarios.{name}.check_start", problems)
        params = _plain(tree)
        _check_events(name, params, problems)
        srcs: dict[str, str] = {}
        _sources(tree, "", srcs)
        if start is not None and check is not None:
            out[name] = Scenario(name, str(tree.get("description", "")), start, check, params, srcs)
    if problems:
        raise ScenarioError(path, problems)
    shared = tuple(k for k, _ in _flat(_plain(defaults.get("expect", {}) or {})))
    return Catalog(out, path, shared)


# ---------------------------------------------------------------- documentation

def _flat(d: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        if isinstance(v, dict) and not _is_sourced(v):
            yield from _flat(v, prefix + k + ".")
        else:
            yield prefix + k, v


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return f"{v:,}" if isinstance(v, int) else str(v)


def expect_markdown(catalog: Catalog) -> str:
    """The ``[scenarios.*.expect]`` ranges as Markdown tables (the shared
    fixed-cadence ones first, then one per scenario) - the block docs/feeds.md
    carries between its markers."""
    out = []
    scs = list(catalog)
    shared = [k for k in catalog.shared_expect if scs and all(k in dict(_flat(sc.expect)) for sc in scs)]

    def row(sc: Scenario, key: str, val: Any) -> str:
        if isinstance(val, list) and (not val or isinstance(val[0], str)):
            return f"| `{key}` | {', '.join(f'`{v}`' for v in val) if val else 'none'} | the scenario's timeline |"
        shown = f"{_fmt(val[0])}–{_fmt(val[1])}" if val[0] != val[1] else _fmt(val[0])
        return f"| `{key}` | {shown} | {sc.sources.get('expect.' + key, '')} |"

    if shared:
        out += ["Every scenario, per check hour:", "", "| measure | range | source |", "|---|---|---|"]
        flat0 = dict(_flat(scs[0].expect))
        out += [row(scs[0], k, flat0[k]) for k in shared]
        out.append("")
    for sc in scs:
        local = sc.check_start.astimezone(LOCAL)
        out.append(f"**{sc.name}** — check hour {local:%Y-%m-%d %H:%M}–{(local + timedelta(hours=1)):%H:%M} "
                   f"(default start {sc.start.astimezone(LOCAL):%Y-%m-%d %H:%M})")
        out += ["", "| measure | range | source |", "|---|---|---|"]
        out += [row(sc, k, v) for k, v in _flat(sc.expect) if k not in shared]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def schema_markdown() -> str:
    """Every feed kind's Arrow schema as Markdown tables (field, type, unit, meaning)."""
    from .schemas import SCHEMAS
    out = []
    for kind, schema in SCHEMAS.items():
        out.append(f"#### `{kind}`\n")
        out.append("| field | type | unit | required | meaning |")
        out.append("|---|---|---|---|---|")
        for f in schema:
            meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
            out.append(f"| `{f.name}` | {f.type} | {meta.get('unit', '')} | {'yes' if not f.nullable else ''} "
                       f"| {meta.get('doc', '')} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m indicators.feeds.scenarios [expect|schemas]``: print a docs block."""
    import sys
    what = (argv if argv is not None else sys.argv[1:]) or ["expect"]
    if what[0] == "schemas":
        print(schema_markdown(), end="")
    else:
        print(expect_markdown(load()), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
