"""The indicator catalog: exactly 1,373, the reviewed snapshot, one id grammar, every error reported."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indicators.catalog import (CatalogError, IdError, IndicatorId, Window, format, load_catalog, parse,
                                parse_families, parse_window, read_snapshot)
from indicators.catalog.ids import SCOPE_KEYS
from indicators.catalog.model import default_families_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def catalog(inventory):
    return load_catalog(inventory=inventory)


def test_the_catalog_expands_to_exactly_1373_indicators(catalog):
    assert len(catalog) == 1373
    assert catalog.summary()["total"] == 1373
    assert len(set(catalog.ids)) == 1373


def test_the_reviewed_snapshot_is_the_expansion(catalog):
    snap = read_snapshot()
    assert snap == sorted(snap), "the snapshot is kept sorted"
    assert snap == catalog.ids, "families.toml and data/catalog/indicator_ids.txt differ: review and re-snapshot"


def test_every_indicator_position_is_its_index(catalog):
    for ind in catalog.indicators:
        assert catalog.index(ind.text) == ind.index
        assert catalog.index(parse(ind.text)) == ind.index


def test_every_catalog_id_is_canonical(catalog):
    for text in catalog.ids:
        assert format(parse(text)) == text


def test_docs_name_every_family_and_the_total(catalog):
    doc = (ROOT / "docs" / "catalog.md").read_text(encoding="utf-8")
    assert "1,373" in doc
    for f in catalog.families:
        short = f.id.split(".", 1)[1]           # the table may group siblings: "weather.temperature, rain_1h"
        assert f.id in doc or re.search(rf"\b{re.escape(short)}\b", doc), f"docs/catalog.md does not mention {f.id}"


def test_every_family_declares_what_the_brief_asks(catalog):
    for f in catalog.families:
        assert f.name_zh and f.name_en and f.description and f.unit
        assert f.level in ("city", "district", "scenic_area") and f.side in ("government", "enterprise", "society")
        assert any(t is not None for t in f.thresholds.tiers()) and f.freshness_s > 0
        assert f.source and f.compute.kind


def test_scaled_thresholds_follow_the_zone_capacity(catalog):
    ind = catalog.indicators[catalog.index("crowd.count:zone=west_plaza@now")]
    cap = catalog.dims.zone_attrs["west_plaza"]["capacity_instantaneous"]
    assert ind.thresholds.red == pytest.approx(cap) and ind.thresholds.yellow == pytest.approx(0.8 * cap)
    lr = catalog.indicators[catalog.index("crowd.load_rate:zone=west_plaza@now")]
    assert (lr.thresholds.yellow, lr.thresholds.orange, lr.thresholds.red) == (80.0, 90.0, 100.0)


def test_owner_departments_come_from_the_inventory(catalog):
    ind = catalog.indicators[catalog.index("facility.anomalies:zone=riverside_east,class=hydrant@now")]
    assert ind.department == "fire_rescue"
    ind = catalog.indicators[catalog.index("crowd.load_rate:zone=tower_base@now")]
    assert ind.department == "canton_tower_company"


# ------------------------------------------------------------------ ids
_word = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_value = st.from_regex(r"[a-z0-9][a-z0-9_\-]{0,12}", fullmatch=True)
_window = st.one_of(st.just(Window("now")), st.just(Window("today")),
                    st.builds(Window, st.sampled_from(["trailing", "ahead"]), st.integers(1, 7 * 86400)))


@st.composite
def indicator_ids(draw):
    family = ".".join(draw(st.lists(_word, min_size=2, max_size=3)))
    keys = draw(st.lists(st.sampled_from(SCOPE_KEYS), min_size=1, max_size=4, unique=True))
    keys.sort(key=SCOPE_KEYS.index)
    return IndicatorId(family, tuple((k, draw(_value)) for k in keys), draw(_window))


@settings(max_examples=400, deadline=None)
@given(indicator_ids())
def test_parse_format_round_trip(x):
    assert parse(format(x)) == x


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10 * 86400))
def test_a_window_is_written_one_way(seconds):
    w = Window("trailing", seconds)
    assert parse_window(str(w)) == w
    if seconds % 60 == 0:
        with pytest.raises(IdError, match="not canonical"):
            parse_window(f"{seconds}s")


@pytest.mark.parametrize("text, message", [
    ("crowd.count:zone=west_plaza", "exactly one '@'"),
    ("crowd.count@now", "exactly one ':'"),
    ("crowd:zone=west_plaza@now", "dotted lower-case"),
    ("crowd.count:zone=West_Plaza@now", "must match"),
    ("crowd.count:planet=mars@now", "unknown scope key 'planet'"),
    ("video.events:algorithm=fall,zone=west_plaza@15m", "must be in the order zone,algorithm"),
    ("crowd.count:zone=a,zone=b@now", "appears twice"),
    ("crowd.count:zone@now", "is not key=value"),
    ("crowd.count:zone=west_plaza@60s", "write '1m'"),
    ("crowd.count:zone=west_plaza@5 minutes", "is not now, today"),
    ("crowd.count:zone=west_plaza@+0m", "is not now, today"),
])
def test_bad_ids_are_refused_with_a_clear_reason(text, message):
    with pytest.raises(IdError, match=re.escape(message)):
        parse(text)


# ------------------------------------------------- every error reported
BROKEN = '''
schema_version = 1
expected_total = 10
[areas]
canton_tower = "scenic_area-canton_tower-0001"
[classes.lamp]
name_zh = "灯"
name_en = "Lamps"
asset_types = ["lamp_pole"]
metric = "lamp_brightness"
anomaly = { op = "<", value = 0.5 }
silent_after_s = { value = 900, source = "x" }
department = "street_lighting"

[[family]]
id = "crowd.load_rate"
name_zh = "客流承载率"
name_en = "Load rate"
description = "x"
unit = "%"
scope = "zone"
expand = { zone = "all" }
windows = ["now"]
source = ["crowd"]
level = "scenic_area"
side = "enterprise"
department = "@zone"
freshness_s = 300
thresholds = { direction = "above", blue = 60.0, yellow = 80.0, orange = 95.0, red = 90.0 }
compute = { kind = "latest", entity = "zone", value = "count" }

[[family]]
id = "Video.Events"
name_zh = "x"
name_en = "x"
description = "x"
unit = "events"
scope = "zone"
expand = { zone = "all", planet = "all" }
windows = ["15m", "60s"]
source = ["video", "cctv"]
level = "galaxy"
side = "enterprise"
department = "@zone"
freshness_s = -1
thresholds = { direction = "sideways", blue = 1.0 }
compute = { kind = "window", value = "events", stat = "median" }

[[family]]
id = "bus.vehicles"
name_zh = "x"
name_en = "x"
description = "x"
unit = "vehicles"
scope = "route"
expand = { route = "all", zone = "all" }
windows = ["now"]
source = ["bus"]
level = "city"
side = "enterprise"
department = "scenic_operations"
freshness_s = 300
thresholds = { direction = "below", blue = 1.0, yellow = 2.0 }
compute = { kind = "distinct", of = "vehicle", colour = "red" }

[[family]]
id = "crowd.load_rate"
name_zh = "x"
name_en = "x"
description = "x"
unit = "%"
scope = "zone"
expand = { zone = "all" }
windows = ["now"]
source = ["crowd"]
level = "scenic_area"
side = "enterprise"
department = "@zone"
freshness_s = 300
thresholds = { direction = "above", red = 1.0 }
compute = { kind = "latest", entity = "zone", value = "count" }
'''


def test_every_problem_of_a_broken_file_is_reported_with_its_path(tmp_path):
    f = tmp_path / "families.toml"
    f.write_text(BROKEN, encoding="utf-8")
    from indicators.catalog import read_families
    with pytest.raises(CatalogError) as e:
        read_families(f)
    found = [str(p) for p in e.value.problems]
    expected = [
        "families.toml: classes.lamp.metric: 'lamp_brightness' is not one of",
        "families.toml: family[0].thresholds.red: must be above orange for direction 'above'",
        "families.toml: family[1].id: 'Video.Events' does not match",
        "families.toml: family[1].level: 'galaxy' is not one of",
        "families.toml: family[1].freshness_s: must be positive",
        "families.toml: family[1].source[1]: unknown feed 'cctv'",
        "families.toml: family[1].windows[1]: window '60s' is not canonical: write '1m'",
        "families.toml: family[1].expand.planet: unknown scope key",
        "families.toml: family[1].thresholds.direction: 'sideways' is not one of above, below",
        "families.toml: family[1].compute.stat: 'median' is not one of",
        "families.toml: family[2].windows[0]: kind 'distinct' computes windows of kind trailing, not now",
        "families.toml: family[2].expand.zone: an event of feed 'bus' cannot be attributed to 'zone'",
        "families.toml: family[2].thresholds.yellow: must be below blue for direction 'below'",
        "families.toml: family[2].compute.colour: unknown field",
        "families.toml: family[3].id: 'crowd.load_rate' is already declared by family[0]",
    ]
    for want in expected:
        assert any(p.startswith(want) for p in found), f"missing: {want}\nreported:\n  " + "\n  ".join(found)
    assert len(found) == len(expected), "\n".join(found)


def test_problems_found_against_the_inventory_are_reported_together(inventory):
    text = default_families_path().read_text(encoding="utf-8")
    text = text.replace('asset_types = ["fire_hydrant"]', 'asset_types = ["fire_hydrant", "water_cannon"]')
    text = text.replace('department = "sanitation"\n\n[classes.bin]', 'department = "sanitaion"\n\n[classes.bin]')
    text = text.replace('expand = { zone = { space = ["walkway", "bridge"] } }',
                        'expand = { zone = { space = ["walkway", "moat"] } }', 1)
    ff = parse_families(text)
    with pytest.raises(CatalogError) as e:
        load_catalog(ff, inventory)
    found = [str(p) for p in e.value.problems]
    assert any("classes.hydrant.asset_types[1]: no asset of type 'water_cannon'" in p for p in found), found
    assert any("classes.toilet.department: 'sanitaion' owns nothing in the inventory" in p for p in found), found
    assert any(re.search(r"family\[\d+\]\.expand\.zone\.space: unknown space\(s\) \['moat'\]", p) for p in found), found


def test_a_wrong_total_is_an_error(inventory):
    text = default_families_path().read_text(encoding="utf-8").replace("expected_total = 1373", "expected_total = 1374")
    with pytest.raises(CatalogError, match="expand to 1373 indicators, not 1374"):
        load_catalog(parse_families(text), inventory)


def test_invalid_toml_is_one_clear_error():
    with pytest.raises(CatalogError, match="families.toml: not valid TOML"):
        parse_families("expected_total = = 3")


# --------------------------------------------------------------------- CLI
def _cli(*argv):
    from indicators.cli import register
    p = argparse.ArgumentParser(prog="scenic-twin")
    sub = p.add_subparsers(dest="command", required=True)
    bench_sub = sub.add_parser("bench").add_subparsers(dest="bench_command", required=True)
    register(sub, bench_sub)
    args = p.parse_args(list(argv))
    return args.func(args)


def test_catalog_command_prints_totals_by_family_scope_feed_level_and_side(capsys):
    assert _cli("catalog", "--json", "--check") == 0
    s = json.loads(capsys.readouterr().out)
    assert s["total"] == 1373 and s["snapshot"]["matches"]
    for key in ("by_family", "by_scope", "by_feed", "by_level", "by_side"):
        assert sum(s[key].values()) == 1373
    assert s["by_family"]["video.events"] == 13 * 24


def test_catalog_check_fails_when_the_snapshot_differs(tmp_path, capsys):
    snap = tmp_path / "ids.txt"
    snap.write_text("\n".join(read_snapshot()[1:]) + "\n", encoding="utf-8")
    assert _cli("catalog", "--check", "--snapshot", str(snap)) == 1
    assert "1 new id(s)" in capsys.readouterr().err


def test_catalog_command_lists_every_problem(tmp_path, capsys):
    f = tmp_path / "families.toml"
    f.write_text(BROKEN, encoding="utf-8")
    assert _cli("catalog", "--families", str(f)) == 2
    err = capsys.readouterr().err
    assert "family[0].thresholds.red" in err and "family[3].id" in err and "15 problem(s)" in err
