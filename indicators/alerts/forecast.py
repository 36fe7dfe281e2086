"""Short-term (15 / 30 min) forecasts of every zone's load rate, and forecast alerts.

Method - a damped-trend anomaly model around a seasonal profile, vectorised
over zones (pure numpy, one update per minute):

1. *History*: :class:`Profile` is the mean load of each zone per minute of
   day and day type (weekday / weekend / holiday), smoothed over ±7 minutes.
   Today's *level ratio* ``r`` is a slow exponentially weighted mean of
   load ÷ profile: a busier day than usual scales the whole profile.
2. *Anomaly*: ``y = load − r·P(t)`` is what the profile does not explain (a
   surge, a tour group, a light show ending).  Holt's linear smoothing with a
   damped trend tracks its level ``ℓ`` and slope ``b``.
3. *Flows*: where gates count entries and exits, the net flow tells the
   slope directly and with less noise than the differenced load.  Its scale
   (load points per net person - the share of the zone's flows the gates
   see is unknown) is an exponentially weighted least-squares fit of load
   changes on net flow; the fitted net-flow slope is blended into ``b``.
4. *Forecast*: ``L̂(t+h) = ℓ + b·(φ + φ² + … + φʰ) + r·P(t+h)`` - the anomaly
   decays (φ < 1: surges do not grow for ever) while the day follows its
   usual shape.

:func:`crossings` turns a forecast path into *forecast alerts*: the first
tier a zone is predicted to reach above its current one, with the lead time
("orange in about 18 minutes" / 「约18分钟后达到橙色」).

:func:`fit_params` picks the smoothing constants from a small grid on the
last history days (scored with a profile fitted on the days before them).
:func:`day_from_feed` turns the ``crowd`` and ``gate`` feeds (e.g. of
:func:`indicators.feeds.simulator.simulate`) into per-minute arrays;
:func:`evaluate` scores the model against persistence on held-out days.
"""
from __future__ import annotations

import copy

from dataclasses import dataclass
from datetime import date
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa

from . import RANK, TIER_ZH

MINUTES = 1440
DAY_TYPES = ("weekday", "weekend", "holiday")


def day_type(d: date, holidays: frozenset[date] | set[date] = frozenset()) -> int:
    """0 weekday, 1 weekend, 2 holiday (a listed date; holidays win)."""
    if d in holidays:
        return 2
    return 1 if d.weekday() >= 5 else 0


# --------------------------------------------------------------------------- history
@dataclass
class Profile:
    """Mean load per (day type, zone, minute of day), shape (3, Z, 1440)."""

    values: np.ndarray

    @classmethod
    def fit(cls, loads: np.ndarray, day_types: Sequence[int], smooth_min: int = 7) -> "Profile":
        """From history ``loads`` (days, zones, 1440) and each day's type.  A day
        type with no history falls back to the mean of all days."""
        loads = np.asarray(loads, float)
        dts = np.asarray(day_types)
        overall = np.nanmean(loads, axis=0)
        vals = np.stack([np.nanmean(loads[dts == k], axis=0) if (dts == k).any() else overall
                         for k in range(len(DAY_TYPES))])
        if smooth_min > 0:
            w = 2 * smooth_min + 1
            pad = np.concatenate([vals[..., -smooth_min:], vals, vals[..., :smooth_min]], axis=-1)
            c = np.cumsum(np.concatenate([np.zeros(vals.shape[:-1] + (1,)), pad], axis=-1), axis=-1)
            vals = (c[..., w:] - c[..., :-w]) / w
        return cls(np.nan_to_num(vals))

    def at(self, dtype: int, minute: int | np.ndarray) -> np.ndarray:
        """Profile of every zone at ``minute`` (wraps past midnight): (Z,) or (Z, k)."""
        return self.values[dtype][:, np.asarray(minute) % MINUTES]


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ForecastParams:
    """Smoothing constants (per minute).  ``alpha``/``beta``: Holt level and
    trend; ``phi``: trend damping; ``ratio_alpha``: the day-level ratio;
    ``flow_alpha``: the net-flow scale fit; ``flow_weight``: how much of the
    slope comes from gates when they are present.  :func:`fit_params` picks
    alpha, beta, phi and flow_weight from a small grid on history."""

    alpha: float = 0.2
    beta: float = 0.05
    phi: float = 0.95
    ratio_alpha: float = 0.02
    flow_alpha: float = 0.01
    flow_weight: float = 0.0
    horizon: int = 30


class ZoneForecaster:
    """Running forecast state of all zones; :meth:`update` once per minute.

    ``params`` is one :class:`ForecastParams` or one per zone (the grid fit
    runs every candidate as extra "zones" of a single vectorised pass)."""

    def __init__(self, n_zones: int, params: ForecastParams | Sequence[ForecastParams] = ForecastParams(),
                 profile: Profile | None = None, profile_rows: np.ndarray | None = None):
        ps = [params] * n_zones if isinstance(params, ForecastParams) else list(params)
        if len(ps) != n_zones:
            raise ValueError("one ForecastParams, or one per zone")
        col = lambda k: np.array([getattr(p, k) for p in ps], float)  # noqa: E731
        self.alpha, self.beta, self.phi = col("alpha"), col("beta"), col("phi")
        self.ratio_alpha, self.flow_alpha, self.flow_weight = col("ratio_alpha"), col("flow_alpha"), col("flow_weight")
        self.horizon = max(p.horizon for p in ps)
        self.profile = profile
        self.rows = np.arange(n_zones) if profile_rows is None else np.asarray(profile_rows)
        z = n_zones
        self.level = np.full(z, np.nan)
        self.trend = np.zeros(z)
        self.ratio = np.ones(z)
        self.last_load = np.full(z, np.nan)
        self.flow_xy = np.zeros(z)        # EW sum of Δload·net
        self.flow_xx = np.zeros(z)        # EW sum of net²
        self.flow_v = np.zeros(z)         # EW mean of net flow (persons/min)
        self.minute = 0
        self.dtype = 0
        k = np.arange(1, self.horizon + 1)
        self._damp = np.cumsum(self.phi[:, None] ** k[None, :], axis=1)   # φ + … + φ^h, (Z, H)

    _STATE = ("level", "trend", "ratio", "last_load", "flow_xy", "flow_xx", "flow_v")

    def copy(self) -> "ZoneForecaster":
        """An independent copy of the running state (parameters and profile shared: never changed)."""
        c = copy.copy(self)
        for k in self._STATE:
            setattr(c, k, getattr(self, k).copy())
        return c

    def _season(self, minute: int | np.ndarray) -> np.ndarray:
        m = np.asarray(minute)
        if self.profile is None:
            return np.zeros((len(self.level),) + m.shape)
        v = self.profile.values[self.dtype]
        if m.ndim == 0:
            return v[self.rows, int(m) % MINUTES]
        return v[self.rows[:, None], (m % MINUTES)[None, :]]

    def update(self, minute: int, dtype: int, load: np.ndarray, entries: np.ndarray | None = None,
               exits: np.ndarray | None = None) -> None:
        """Take the loads of all zones at ``minute`` of a day of type ``dtype``
        (NaN = no value: the zone's state is carried forward)."""
        self.minute, self.dtype = minute, dtype
        load = np.asarray(load, float)
        ok = np.isfinite(load)
        prof = self._season(minute)
        has = prof > 1e-6
        # day-level ratio (slow): how busy today is against the usual day
        rr = np.clip(load / np.where(has, prof, 1.0), 0.2, 5.0)
        upd = has & ok
        self.ratio = np.where(upd, (1 - self.ratio_alpha) * self.ratio + self.ratio_alpha * rr, self.ratio)
        y = load - self.ratio * prof
        first = ok & ~np.isfinite(self.level)
        prev = self.level
        new_level = self.alpha * y + (1 - self.alpha) * (prev + self.phi * self.trend)
        new_trend = self.beta * (new_level - prev) + (1 - self.beta) * self.phi * self.trend
        if entries is not None and exits is not None:
            # gates: fit the load points per net person, blend the gate slope in
            net = np.asarray(entries, float) - np.asarray(exits, float)
            g = np.isfinite(net) & ok & np.isfinite(self.last_load)
            dl = np.where(g, load - np.nan_to_num(self.last_load), 0.0)
            net0 = np.nan_to_num(net)
            a = self.flow_alpha
            self.flow_xy = np.where(g, (1 - a) * self.flow_xy + a * dl * net0, self.flow_xy)
            self.flow_xx = np.where(g, (1 - a) * self.flow_xx + a * net0 * net0, self.flow_xx)
            self.flow_v = np.where(g, (1 - self.beta) * self.flow_v + self.beta * net0, self.flow_v)
            scale = self.flow_xy / np.where(self.flow_xx > 0, self.flow_xx, 1.0)
            gate_slope = scale * self.flow_v - self.ratio * (self._season(minute + 1) - prof)
            w = np.where(g & (self.flow_xx > 0), self.flow_weight, 0.0)
            new_trend = (1 - w) * new_trend + w * gate_slope
        self.level = np.where(first, y, np.where(ok, new_level, self.level))
        self.trend = np.where(first, 0.0, np.where(ok, new_trend, self.trend))
        self.last_load = np.where(ok, load, self.last_load)

    def path(self, horizon: int | None = None) -> np.ndarray:
        """Predicted loads for +1 … +H minutes: (Z, H)."""
        h = horizon or self.horizon
        k = np.arange(1, h + 1)
        fut = self.ratio[:, None] * self._season(self.minute + k)
        return self.level[:, None] + self.trend[:, None] * self._damp[:, :h] + fut

    def forecast(self, horizons: Sequence[int] = (15, 30)) -> np.ndarray:
        """Predicted loads at the given horizons (minutes): (Z, len(horizons))."""
        path = self.path(max(horizons))
        return path[:, [h - 1 for h in horizons]]


# --------------------------------------------------------------------------- forecast alerts
@dataclass(frozen=True)
class Crossing:
    """A zone predicted to reach a higher tier: which, when, at what value."""

    zone: int
    tier: str
    threshold: float
    lead_min: int
    predicted: float

    def sentence(self) -> tuple[str, str]:
        return (f"约{self.lead_min}分钟后达到{TIER_ZH[self.tier]}",
                f"{self.tier} in about {self.lead_min} minutes")


def crossings(path: np.ndarray, thresholds: np.ndarray, current_rank: np.ndarray,
              tiers: Sequence[str] = ("blue", "yellow", "orange", "red")) -> list[Crossing]:
    """For each zone the highest tier above its current rank that the path
    reaches, with the first minute it does.  ``thresholds``: (Z, 4) in tier
    order, NaN where a zone has no such tier ('above' direction)."""
    out = []
    z_n, h = path.shape
    reach = path[:, :, None] >= thresholds[:, None, :]             # (Z, H, 4)
    any_reach = reach.any(axis=1)                                 # (Z, 4)
    first = np.where(any_reach, reach.argmax(axis=1) + 1, 0)       # minutes
    for z in range(z_n):
        for t in range(len(tiers) - 1, -1, -1):
            if any_reach[z, t] and RANK[tiers[t]] > current_rank[z]:
                out.append(Crossing(z, tiers[t], float(thresholds[z, t]), int(first[z, t]),
                                    float(path[z, first[z, t] - 1])))
                break
    return out


# --------------------------------------------------------------------------- day series
@dataclass
class DaySeries:
    """Per-minute series of whole local days: ``load`` (% of capacity),
    ``entries``/``exits`` (gate counts per minute; NaN for zones without
    gates), each (days, zones, 1440); ``day_types`` (days,)."""

    load: np.ndarray
    entries: np.ndarray
    exits: np.ndarray
    day_types: np.ndarray

    def __getitem__(self, days) -> "DaySeries":
        return DaySeries(self.load[days], self.entries[days], self.exits[days], self.day_types[days])


def day_from_feed(items: Iterable, zone_ids: Sequence[str], capacity: Sequence[float], start_ms: int,
                  minutes: int = MINUTES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adapter: (kind, table) items of the ``crowd`` and ``gate`` feeds ->
    per-minute load % (zones, minutes) and gate entries/exits (NaN where a
    zone has no gate).  A minute is ``(event_time - start_ms) // 60 s``."""
    zi = {z: i for i, z in enumerate(zone_ids)}
    cap = np.asarray(capacity, float)
    z_n = len(zone_ids)
    load = np.full((z_n, minutes), np.nan)
    ent = np.zeros(z_n * minutes)
    ext = np.zeros(z_n * minutes)
    gated = np.zeros(z_n, bool)
    for item in items:
        kind, table = item[0], item[1]
        if kind not in ("crowd", "gate") or table.num_rows == 0:
            continue
        m = (table["event_time"].cast(pa.int64()).to_numpy() - start_ms) // 60_000
        z = np.array([zi.get(x, -1) for x in table["zone_id"].to_pylist()])
        ok = (m >= 0) & (m < minutes) & (z >= 0)
        if kind == "crowd":
            if "cell_id" in table.column_names:
                ok &= np.asarray(table["cell_id"].is_null())
            load[z[ok], m[ok]] = 100.0 * table["count"].to_numpy()[ok] / cap[z[ok]]
        else:
            flat = z[ok] * minutes + m[ok]
            ent += np.bincount(flat, table["entries"].to_numpy()[ok], z_n * minutes)
            ext += np.bincount(flat, table["exits"].to_numpy()[ok], z_n * minutes)
            gated[np.unique(z[ok])] = True
    ent = ent.reshape(z_n, minutes)
    ext = ext.reshape(z_n, minutes)
    ent[~gated] = np.nan
    ext[~gated] = np.nan
    return load, ent, ext


# --------------------------------------------------------------------------- evaluation
def _run(days: DaySeries, profile: Profile | None, params, horizons: Sequence[int], open_minutes, use_gates,
         profile_rows=None) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Mean absolute errors per zone (model, persistence) at each horizon."""
    n_days, z_n, _ = days.load.shape
    hs = list(horizons)
    lo, hi = open_minutes
    sum_m = {h: np.zeros(z_n) for h in hs}
    sum_p = {h: np.zeros(z_n) for h in hs}
    cnt = {h: np.zeros(z_n) for h in hs}
    for d in range(n_days):
        f = ZoneForecaster(z_n, params, profile, profile_rows)
        L = days.load[d]
        for t in range(min(hi, MINUTES - max(hs))):
            f.update(t, int(days.day_types[d]), L[:, t], days.entries[d][:, t] if use_gates else None,
                     days.exits[d][:, t] if use_gates else None)
            if t >= lo:
                fc = f.forecast(hs)
                for i, h in enumerate(hs):
                    obs = L[:, t + h]
                    ok = np.isfinite(obs) & np.isfinite(L[:, t]) & np.isfinite(fc[:, i])
                    sum_m[h] += np.where(ok, np.abs(fc[:, i] - obs), 0)
                    sum_p[h] += np.where(ok, np.abs(L[:, t] - obs), 0)
                    cnt[h] += ok
    mae_m = {h: sum_m[h] / np.maximum(cnt[h], 1) for h in hs}
    mae_p = {h: sum_p[h] / np.maximum(cnt[h], 1) for h in hs}
    return mae_m, mae_p


def evaluate(days: DaySeries, profile: Profile | None, params: ForecastParams = ForecastParams(),
             horizons: Sequence[int] = (15, 30), use_gates: bool = True, open_minutes: tuple[int, int] = (540, 1320)
             ) -> dict[str, object]:
    """MAE of the model and of persistence at each horizon over ``days``, in
    load-rate points: over all zones and per zone.  Each day runs from
    midnight; errors count for forecasts made within ``open_minutes``."""
    mae_m, mae_p = _run(days, profile, params, horizons, open_minutes, use_gates)
    out: dict[str, object] = {}
    for h in horizons:
        m, p = float(mae_m[h].mean()), float(mae_p[h].mean())
        out[f"mae_{h}"] = m
        out[f"persistence_mae_{h}"] = p
        out[f"improvement_{h}"] = 1 - m / p if p > 0 else 0.0
        out[f"per_zone_mae_{h}"] = mae_m[h].round(3).tolist()
        out[f"per_zone_persistence_mae_{h}"] = mae_p[h].round(3).tolist()
    return out


GRID = tuple(ForecastParams(alpha=a, beta=b, phi=p, flow_weight=w)
             for a in (0.1, 0.2, 0.35, 0.5) for b in (0.02, 0.05, 0.1) for p in (0.9, 0.95) for w in (0.0, 0.3))
"""Candidates of :func:`fit_params` (48)."""


def fit_params(history: DaySeries, validation_days: int = 2, grid: Sequence[ForecastParams] = GRID,
               horizons: Sequence[int] = (15, 30), open_minutes: tuple[int, int] = (540, 1320)) -> ForecastParams:
    """Pick the candidate with the lowest mean MAE over ``horizons`` on the last
    ``validation_days`` of ``history``, with a profile fitted on the days
    before them (no day is used to fit and to score).  All candidates run in
    ONE vectorised pass: candidate × zone are the rows of one forecaster."""
    n = history.load.shape[0]
    v = min(validation_days, n - 1)
    if v < 1:
        return ForecastParams()
    profile = Profile.fit(history.load[:n - v], history.day_types[:n - v])
    val = history[slice(n - v, n)]
    z_n = val.load.shape[1]
    k = len(grid)
    rep = lambda a: np.tile(a, (1, k, 1))  # noqa: E731  (days, k*Z, T)
    wide = DaySeries(rep(val.load), rep(val.entries), rep(val.exits), val.day_types)
    params = [g for g in grid for _ in range(z_n)]
    rows = np.tile(np.arange(z_n), k)
    mae_m, _ = _run(wide, profile, params, horizons, open_minutes, True, rows)
    score = sum(mae_m[h].reshape(k, z_n).mean(axis=1) for h in horizons)
    return grid[int(np.argmin(score))]


__all__ = ["Crossing", "DAY_TYPES", "DaySeries", "ForecastParams", "GRID", "Profile", "ZoneForecaster", "crossings",
           "day_from_feed", "day_type", "evaluate", "fit_params"]
