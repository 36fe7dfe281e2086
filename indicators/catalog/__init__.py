"""The indicator catalog: 1,373 scenic-area vital signs declared as data.

``data/catalog/families.toml`` (families) -> :func:`load_catalog` (checked
and expanded over the inventory) -> :class:`Catalog` (indicators in id order,
the order of the engine's value arrays).  Ids follow one grammar
(:mod:`.ids`).
"""
from .expand import Catalog, Dimensions, Indicator, load_catalog, read_snapshot, snapshot_path, write_snapshot
from .ids import IdError, IndicatorId, Window, format, parse, parse_window
from .model import CatalogError, Family, Problem, Thresholds, parse_families, read_families

__all__ = ["Catalog", "Dimensions", "Indicator", "load_catalog", "read_snapshot", "snapshot_path", "write_snapshot",
           "IdError", "IndicatorId", "Window", "format", "parse", "parse_window",
           "CatalogError", "Family", "Problem", "Thresholds", "parse_families", "read_families"]
