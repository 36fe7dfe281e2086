"""Units of the catalog as people read them, in Chinese and English.

The catalog writes units in a compact ASCII form (``persons/m2``); alert
sentences and every screen show them through this one table.  A unit that
is not here is left out of a text rather than shown as a code.
"""
from __future__ import annotations

UNITS: dict[str, tuple[str, str]] = {
    "%": ("%", "%"), "C": ("°C", "°C"), "°C": ("°C", "°C"), "MPa": ("MPa", "MPa"), "m": ("m", "m"),
    "mm": ("mm", "mm"), "m/s": ("m/s", "m/s"), "km/h": ("km/h", "km/h"),
    "persons": ("人", "persons"), "persons/m2": ("人/m²", "persons/m²"), "persons/min": ("人/分钟", "persons/min"),
    "persons/m/min": ("人/(m·分钟)", "persons/(m·min)"), "assets": ("处", "assets"), "cameras": ("路", "cameras"),
    "cases": ("件", "cases"), "events": ("起", "events"), "vehicles": ("辆", "vehicles"),
    "vehicles/h": ("辆/小时", "vehicles/h"), "min": ("分钟", "min"), "s": ("秒", "s"),
    "segments": ("段", "segments"), "signals": ("个", "signals"),
}


def unit_name(unit: str | None, lang: str) -> str:
    u = UNITS.get(unit or "")
    return "" if u is None else u[0 if lang == "zh" else 1]


def with_unit(text: str, unit: str | None, lang: str) -> str:
    """``text`` followed by the unit ("%" and "°C" attach, words take a space)."""
    name = unit_name(unit, lang)
    if not name:
        return text
    return f"{text}{name}" if name in ("%", "°C") or lang == "zh" else f"{text} {name}"
