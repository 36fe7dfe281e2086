"""Walking distances on the inventory's path network and the place words of dispatch messages."""
from __future__ import annotations

import numpy as np
import pytest

from indicators.alerts.routing import Line, PathNetwork, StaffPosition, places_from_inventory, suggest_staff


@pytest.fixture(scope="module")
def places(inventory, frame):
    return places_from_inventory(inventory, frame)


def _line(places, asset_id):
    return next(ln for ln in places.lines if ln.id == asset_id)


def _landmark(places, name_zh):
    return next((x, y) for zh, _, x, y in places.landmarks if zh == name_zh)


def test_the_network_joins_every_walkway_road_and_bridge(places):
    net = places.network
    kinds = {ln.kind for ln in places.lines}
    assert kinds == {"walkway", "road", "bridge"}
    assert net.components() == 1
    assert len(net.nodes) > sum(len(ln.xy) for ln in places.lines) / 2     # vertices and crossings


def test_walking_is_never_shorter_than_the_straight_line(places):
    rng = np.random.default_rng(3)
    pts = rng.uniform([-900, -800], [1000, 600], (40, 2))
    for p in pts[:8]:
        walk = places.network.walking_m(p, pts)
        straight = np.hypot(*(pts - p).T)
        assert np.all(walk >= straight - 1e-6)


def test_across_the_river_the_bridge_decides_who_is_nearest(places):
    """A case at the north end of Haixin Bridge: a patrol member at the north
    end of Guangzhou Bridge is closer in a straight line (over the water), but
    must walk back over Guangzhou Bridge, along the south bank and over Haixin
    Bridge; the one at the pier on the south bank only crosses Haixin Bridge."""
    haixin = _line(places, "bridge-haixin_bridge-0001")
    gz = _line(places, "bridge-guangzhou_bridge-0001")
    case = haixin.xy[-1]
    north_bank = StaffPosition("north-bank", *gz.xy[-1])
    south_bank = StaffPosition("south-bank", *_landmark(places, "广州塔码头"))
    straight = {s.staff_id: float(np.hypot(s.x - case[0], s.y - case[1])) for s in (north_bank, south_bank)}
    assert straight["north-bank"] < straight["south-bank"]          # the trap: over the water it is nearer
    best, second = suggest_staff(places.network, case, [north_bank, south_bank])
    assert best.staff_id == "south-bank"
    assert second.staff_id == "north-bank"
    assert second.walking_m > 2 * second.straight_m
    # the south-bank walk is about the bridge plus the way to it
    bridge_len = float(np.hypot(*np.diff(np.array(haixin.xy), axis=0).T).sum())
    assert bridge_len < best.walking_m < bridge_len + 400


def test_only_available_staff_are_suggested(places):
    p = _landmark(places, "滨水大台阶")
    staff = [StaffPosition("busy-right-here", p[0] + 1, p[1], "busy"),
             StaffPosition("offline", p[0], p[1] + 1, "offline"),
             StaffPosition("free-further", p[0] + 150, p[1], "available")]
    got = suggest_staff(places.network, p, staff)
    assert [s.staff_id for s in got] == ["free-further"]
    assert suggest_staff(places.network, p, staff[:2]) == []


def test_place_words_follow_the_real_platform(places):
    # a point on Yuejiang West Road east of the tower
    yj = _line(places, "road-road_yuejiang_west-0001")
    x, y = np.mean(np.array(yj.xy[1:3]), axis=0)
    assert places.place(x, y) == ("广州塔东侧阅江西路", "Yuejiang West Road, east of Canton Tower")
    # under Guangzhou Bridge, by the riverside road: 「广州塔西侧滨江东路广州大桥底」
    bx, by = _landmark(places, "广州大桥底")
    assert places.place(bx, by - 5)[0] == "广州塔西侧滨江东路广州大桥底"
    # far from any road: the zone's name
    z = places.zones["tower_base"].polygon.representative_point()
    assert places.place(z.x, z.y)[0].endswith("塔基广场")


def test_sides_of_the_tower(places):
    assert [places.side(*p)[0] for p in ((500, 20), (-500, 20), (20, 500), (20, -500))] == [
        "东侧", "西侧", "北侧", "南侧"]


def test_a_line_end_short_of_a_road_is_joined_to_it():
    road = Line("r", "road", "路", "Road", "z", ((0.0, 0.0), (100.0, 0.0)), 20.0)
    path = Line("p", "walkway", "步道", "Path", "z", ((50.0, 9.0), (50.0, 60.0)), 4.0)   # stops 9 m short
    lonely = Line("q", "walkway", "孤岛", "Island", "z", ((50.0, 200.0), (60.0, 200.0)), 4.0)
    assert PathNetwork([road, path]).components() == 1
    assert PathNetwork([road, path, lonely]).components() == 2
    d = PathNetwork([road, path]).walking_m((0.0, 0.0), [(50.0, 60.0)])[0]
    assert d == pytest.approx(50 + 9 + 51)
