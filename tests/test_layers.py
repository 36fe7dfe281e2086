"""Imports point inward: a lower layer never imports a higher one.

Layers, lowest first (a module may import its own layer and any lower one):

    twin_assets                                     the asset model
    indicators.localtime, catalog, feeds            vocabulary, ids, feed formats
    indicators.engine                               the indicator engine
    indicators.alerts, kpis, snapshot               alert core, KPI reduction, the published snapshot
    indicators.access                               accounts, roles, audit
    indicators.pipeline                             engine -> alert runtime wiring
    indicators.service, replay_alerts, cli,         the application layer and its commands
      bench_replay,
      thresholds, bus (JetStream sink, engine workers)
    dashboard                                       the views

The test reads every module's import statements (also the ones inside
functions) with ``ast``, so a lazy import cannot slip past it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS: list[tuple[str, ...]] = [
    ("twin_assets",),
    ("indicators.localtime", "indicators.units", "indicators.catalog", "indicators.feeds", "indicators.sqlstore",
     "indicators.pgserver"),
    ("indicators.engine",),
    ("indicators.alerts", "indicators.kpis", "indicators.snapshot", "indicators.live_objects",
     "indicators.patrols", "indicators.photos"),
    ("indicators.access",),
    ("indicators.pipeline",),
    ("indicators.service", "indicators.replay_alerts", "indicators.bench_replay", "indicators.cli",
     "indicators.thresholds", "indicators.bus"),
    ("dashboard",),
]


def layer_of(module: str) -> int | None:
    best = None
    for rank, names in enumerate(LAYERS):
        for n in names:
            if module == n or module.startswith(n + "."):
                if best is None or len(n) > best[1]:
                    best = (rank, len(n))
    return None if best is None else best[0]


def modules() -> list[tuple[str, Path]]:
    out = []
    for pkg in ("twin_assets", "indicators", "dashboard"):
        for p in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out.append((".".join(parts), p))
    return out


def imported(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
                # `from . import x` may name a submodule
                out += [(node.lineno, f"{name}.{a.name}" if not node.module else name) for a in node.names]
            else:
                out.append((node.lineno, node.module or ""))
    return out


def test_every_module_has_a_layer():
    missing = [m for m, _ in modules() if layer_of(m) is None and m not in ("indicators",)]
    assert not missing, f"modules in no layer (add them to LAYERS in {__file__}): {missing}"


@pytest.mark.parametrize("module,path", modules(), ids=lambda x: x if isinstance(x, str) else "")
def test_imports_point_inward(module, path):
    mine = layer_of(module)
    if mine is None:
        return
    bad = []
    for line, name in imported(module, path):
        theirs = layer_of(name)
        if theirs is not None and theirs > mine:
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} ({LAYERS[theirs][0]} layer) "
                       f"from the lower {LAYERS[mine][0]} layer")
    assert not bad, "\n".join(bad)


def test_the_check_catches_an_upward_import(tmp_path):
    bad = tmp_path / "scene_user.py"
    bad.write_text("def f():\n    from dashboard.scene import TIER_COLOURS\n", encoding="utf-8")
    found = [n for _, n in imported("indicators.service", bad)]
    assert "dashboard.scene" in found and layer_of("dashboard.scene") > layer_of("indicators.service")
