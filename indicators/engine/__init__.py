"""The indicator engine: vectorised, event-time computation of the catalog's indicators.

:class:`Engine` (``ingest`` / ``advance`` / ``changes`` / ``checkpoint`` /
``restore``) over the statistic kinds of :mod:`.state`, compiled per family
by :mod:`.plan`; :mod:`.history` persists ticks, :mod:`.replay` runs a
recording through it, :mod:`.bench` measures it.
"""
from .engine import (CHECKPOINT_VERSION, DEFAULT_LATENESS, IDLE, NO_DATA, OK, QUALITY_NAMES, STALE, Changes,
                     Engine, IngestResult, Tick)
from .kernels import Forecaster, LinearTrend

__all__ = ["Engine", "Tick", "Changes", "IngestResult", "OK", "STALE", "NO_DATA", "IDLE", "QUALITY_NAMES",
           "DEFAULT_LATENESS", "CHECKPOINT_VERSION", "Forecaster", "LinearTrend"]
