"""Alerts, emergency plans and dispatched cases: the twin *manages*, not only monitors.

Rings (imports point inward):

* pure core - :mod:`.rules` (threshold rules as data, validation with paths,
  threshold versions and diffs), :mod:`.state` (the alert state machine:
  ``transition(previous, evaluation, rule, now) -> Transition``),
  :mod:`.compound` (compound-risk rules), :mod:`.plans` (emergency plans),
  :mod:`.cases` (the 立案→派遣→处置→核查→结案 case loop), :mod:`.routing`
  (walking distances on the path network, place phrases), :mod:`.forecast`
  (15/30-minute load forecasts).  Time and data are parameters; nothing here
  reads a clock, a file or the network.
* adapters - :mod:`.store` (SQLite by default, portable SQL for PostgreSQL),
  the data loaders (``load_*`` functions reading ``data/alerts/*.toml``;
  :mod:`.baseline`: the shipped thresholds document beneath the saved
  versions) and :func:`.routing.places_from_inventory`.
* orchestration - :mod:`.runtime` (``AlertRuntime.on_tick``) and :mod:`.cli`.
"""
from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "alerts"

TIERS: tuple[str, ...] = ("blue", "yellow", "orange", "red")
"""Warning tiers from lowest to highest (Emergency Response Law: IV, III, II, I)."""

RANK: dict[str, int] = {t: i + 1 for i, t in enumerate(TIERS)}
"""Tier -> rank (blue 1 … red 4); 0 means no tier."""

ADVISORY_TIERS: frozenset[str] = frozenset({"blue"})
"""Tiers that advise, not alarm (ISA-18.2 distinguishes alerts that need no timely
response from alarms that do): a blue (IV级, 提示) alert colours its zone on the
wall, is listed and kept in the log, but sends no message, escalates never and
opens no case or plan (data/alerts: min_tier, tier_at_least).  An alarm is
yellow and above."""

TIER_ZH: dict[str, str] = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
TIER_LEVEL: dict[str, str] = {"blue": "IV", "yellow": "III", "orange": "II", "red": "I"}
LEVEL_ZH: dict[str, str] = {"IV": "四级", "III": "三级", "II": "二级", "I": "一级"}
LEVEL_TIER: dict[str, str] = {v: k for k, v in TIER_LEVEL.items()}


def tier_of(rank: int) -> str | None:
    """The tier name of a rank (None for 0)."""
    return TIERS[rank - 1] if rank > 0 else None
