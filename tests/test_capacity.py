"""Carrying capacity per LB/T 034-2014 against numbers worked out by hand."""
import pytest

from twin_assets import inventory as inv
from twin_assets.capacity import daily_capacity, instantaneous_capacity, zone_capacity


def test_formula_by_hand():
    # 18,000 m2 plaza, 85 % effective, 5 m2 per visitor, open 16 h, stay 0.5 h
    c = zone_capacity(18_000, 0.85, 5.0, 16.0, 0.5)
    assert c.effective_area_m2 == pytest.approx(15_300)
    assert c.instantaneous == 3_060            # 15,300 / 5
    assert c.daily == 97_920                   # 3,060 x 16 / 0.5


def test_published_daily_capacity_is_kept_and_instantaneous_derived():
    c = zone_capacity(3_769.5, 1.0, 5.0, 13.0, 2.0, published_daily=22_000)
    assert c.daily == 22_000
    assert c.instantaneous == 3_384            # floor(22,000 x 2 / 13)


def test_rounding_down_never_overstates():
    assert instantaneous_capacity(9.99, 5.0) == 1
    assert daily_capacity(7, 10, 3) == 23      # 7 x 3.33 = 23.3


def test_invalid_parameters_are_refused():
    with pytest.raises(ValueError):
        instantaneous_capacity(100, 0)
    with pytest.raises(ValueError):
        daily_capacity(10, 10, 0)


def test_inventory_zones_follow_the_formula(inventory):
    z = {x["zone_id"]: x for x in inv.summary(inventory)["zones"]}
    wp = z["west_plaza"]          # 150 m x 120 m rectangle in zones.toml
    assert wp["area_m2"] == pytest.approx(18_000, abs=1)
    assert wp["capacity_instantaneous"] == 3_060 and wp["capacity_daily"] == 97_920
    assert z["canton_tower_interior"]["capacity_daily"] == 22_000
    hx = z["haixin_bridge"]       # deck 15 m wide; effective 85 %, 5 m2 per visitor, 16 h / 0.4 h
    inst = int(hx["area_m2"] * 0.85 / 5)
    assert hx["capacity_instantaneous"] == inst and hx["capacity_daily"] == int(inst * 16 / 0.4)
