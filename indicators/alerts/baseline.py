"""The shipped thresholds document and how a saved version is layered over it.

``data/alerts/thresholds.toml`` holds the calendars and profiles every
deployment starts with (the Golden Week calendar and the core area's
``holiday`` load-rate tiers), in the shape of a threshold version
(``calendars`` + ``override``, see :mod:`.rules`).  The rules in force are

    catalog defaults  <-  shipped document  <-  the supervisors' latest saved version

:func:`layer` puts a saved document over the shipped one: tables merge key by
key, anything else (a number, a string, a list such as ``profiles``)
replaces what is beneath.  A saved version therefore holds only the
supervisors' own changes, a software update can add next year's holiday dates,
and a supervisor can still switch a shipped profile off (``"profiles": []``).

The file's ``[sources]`` table (where each calendar and profile comes from)
is kept apart for display; it is not part of the document.
"""
from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Mapping

from . import DATA_DIR

BASELINE_FILE = DATA_DIR / "thresholds.toml"


@dataclass(frozen=True)
class Baseline:
    """The shipped document (JSON-able: dates as ISO text) and its sources."""

    doc: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)   # "calendars"/"profiles" -> name -> text
    path: str = ""


def _plain(x: Any) -> Any:
    """TOML values as JSON ones (dates become ISO text)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    if isinstance(x, (date, datetime)):
        return x.isoformat()
    return x


def read_baseline(path: str | Path = BASELINE_FILE) -> Baseline:
    """The shipped document at ``path``; a missing file is an empty baseline."""
    p = Path(path)
    if not p.exists():
        return Baseline(path=str(p))
    raw = tomllib.loads(p.read_text(encoding="utf-8"))
    sources = raw.pop("sources", {}) or {}
    return Baseline(_plain(raw), _plain(sources), str(p))


_CACHE: dict[str, tuple[float, Baseline]] = {}


def load_baseline(path: str | Path = BASELINE_FILE) -> Baseline:
    """:func:`read_baseline`, read again only when the file changed."""
    p = Path(path)
    stamp = p.stat().st_mtime if p.exists() else -1.0
    hit = _CACHE.get(str(p))
    if hit is None or hit[0] != stamp:
        hit = (stamp, read_baseline(p))
        _CACHE[str(p)] = hit
    return hit[1]


def layer(base: Any, top: Any) -> Any:
    """``top`` over ``base``: mappings merge key by key, anything else in ``top``
    replaces ``base``.  Neither argument is modified."""
    if isinstance(base, Mapping) and isinstance(top, Mapping):
        out = {k: copy.deepcopy(v) for k, v in base.items()}
        for k, v in top.items():
            out[k] = layer(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(top)


def effective(doc: Mapping[str, Any] | None, baseline: Baseline | None = None) -> dict[str, Any]:
    """The document the rules are built from: ``doc`` (a saved version, or
    None) layered over the shipped baseline."""
    base = (load_baseline() if baseline is None else baseline).doc
    return layer(base, doc or {})


__all__ = ["BASELINE_FILE", "Baseline", "effective", "layer", "load_baseline", "read_baseline"]
