"""The supervisors' threshold page (/config): the service's threshold methods and the page's callbacks.

* a save is refused without a reason, with the problems by field for bad values, and from a stale
  version (two supervisors), and every save and refusal is audited (before / after);
* a saved threshold changes what the RUNNING pipeline raises at its next evaluation, and a rollback
  restores it (a Service driven with a simulated clock, as tests/test_service.py does);
* the backtest over the service's own tick history is bounded in time and says what it covered;
* the callbacks, called as a browser calls them (POST /_dash-update-component through the access
  middleware): the list in words (no rule ids in any text), the form's notes by field, save;
  an operator or a viewer calling any config callback is refused on the server.
"""
from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, timedelta, timezone

import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from dashboard import auth, config_page
from dashboard.app import create_app
from dashboard.live import SnapshotHub
from indicators.access.store import AccessStore
from indicators.feeds.simulator import Faults, simulate
from indicators.pipeline import zone_indicator
from indicators.service import Service, ServiceConfig
from indicators.thresholds import Change, NoChange, Refused, StaleVersion

START = datetime(2026, 10, 1, 18, 0, tzinfo=timezone(timedelta(hours=8)))     # National Day evening
HOST = "127.0.0.1:8050"
BASE = f"http://{HOST}"
PASSWORD = "correct horse battery staple 42"


class Feeder:
    """Feeds the simulated National Day into the service in steps of event time, and steps it."""

    def __init__(self, service: Service):
        self.s = service
        self.t = START

    def run(self, seconds: float) -> None:
        end = self.t + timedelta(seconds=seconds)
        for batch in simulate("national-day", self.t, end - self.t, 7, faults=Faults.off()):
            self.s.sim_clock.set(batch.arrival)
            self.s.ingestor.submit(batch.kind, batch.payload, source="test")
        self.t = end
        self.s.step()

    def watch(self, rid: str) -> list:
        """From now on, (tick time, [(status, tier)] of ``rid``'s alerts) after EACH evaluation of the
        running pipeline (a step computes every tick the watermark allows, often several evaluations)."""
        seen: list = []
        original = self.s.pipeline.on_tick

        def on_tick(tick, **kw):
            res = original(tick, **kw)
            if res is not None and not res.skipped:
                seen.append((tick.time, [(st.status, st.tier) for st in states_of(self.s, rid)]))
            return res
        self.s.pipeline.on_tick = on_tick
        return seen

    def unwatch(self) -> None:
        self.s.pipeline.__dict__.pop("on_tick", None)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One service (its own var/ folder, no simulator thread, a simulated clock) that has run
    20 minutes of National Day evening, so it has a tick history and evaluates its rules."""
    var = tmp_path_factory.mktemp("var")
    audit: list[dict] = []

    def record(actor, action, object_type, object_id, *, before=None, after=None, detail=None, outcome="ok"):
        audit.append({"actor": actor, "action": action, "object": (object_type, object_id), "before": before,
                      "after": after, "detail": detail, "outcome": outcome})
    cfg = ServiceConfig(var=var, scenario="national-day", speed=60, simulate=False,
                        alerts_warmup=timedelta(minutes=2))
    s = Service(cfg, audit=record)
    s.sim_clock.set(START)
    feeder = Feeder(s)
    for _ in range(20):
        feeder.run(60)
    s.checkpoint()                                    # the tick history on disk
    assert s.pipeline.evaluations > 10
    yield {"service": s, "feeder": feeder, "audit": audit, "var": var}
    s.alert_store.close()


def busiest_zone_rule(s: Service) -> tuple[str, float]:
    """The load-rate rule of the busiest zone that has no calendar profile (the Golden Week
    profile of the core zones would be the tiers in force on 1 October, not the everyday ones)."""
    best = None
    for z in s.pipeline.zones:
        rid = zone_indicator("crowd.load_rate", z)
        rule = s.pipeline.rules.get(rid)
        d = s.threshold_describe(rid)
        v, q = d["value"], d["quality"]
        if rule is None or rule.profiles or v is None or q != "ok":
            continue
        if best is None or v > best[1]:
            best = (rid, v)
    assert best is not None and best[1] > 5, best
    return best


def states_of(s: Service, rid: str):
    return [st for st in s.alerts.states.values() if st.rule_id == rid and st.active]


# ----------------------------------------------------------------------------- the service
def test_search_and_describe_read_the_latest_saved_version_with_values(world):
    s = world["service"]
    rows = s.threshold_search()
    assert len(rows) == 1373
    west = s.threshold_search(zone="west_plaza", family="crowd.load_rate")
    assert [r["id"] for r in west] == ["crowd.load_rate:zone=west_plaza@now"]
    assert west[0]["value"] is not None and west[0]["quality"] == "ok"
    d = s.threshold_describe("crowd.load_rate:zone=west_plaza@now")
    assert d["loaded_version"] == 0 and d["profiles"][0]["calendar"]["name"] == "golden_week"
    assert d["tiers"]["red"]["source"].startswith("catalog")


def test_a_save_without_a_reason_is_refused_and_audited(world):
    s, audit = world["service"], world["audit"]
    rid, _ = busiest_zone_rule(s)
    n = len(s.alert_store.threshold_versions())
    for reason in ("", "   ", None):
        with pytest.raises(Refused) as e:
            s.save_threshold(rid, Change(tiers={"red": 95}), by="sup.a", reason=reason, expected_version=n)
        assert [p.field for p in e.value.problems] == ["reason"]
        assert "reason" in e.value.problems[0].message
    assert len(s.alert_store.threshold_versions()) == n
    assert audit[-1]["outcome"] == "refused" and audit[-1]["actor"] == "sup.a"
    assert audit[-1]["detail"]["refused"][0]["field"] == "reason"
    # with a bad value too: both said at once
    with pytest.raises(Refused) as e:
        s.save_threshold(rid, Change(tiers={"red": "viel"}), by="sup.a", reason="", expected_version=n)
    assert {p.field for p in e.value.problems} == {"reason", "tiers.red"}


@pytest.mark.parametrize("change, fields", [
    (Change(tiers={"red": 50}), {"tiers.red"}),                       # below orange (90) for an "above" rule
    (Change(tiers={"red": "abc"}), {"tiers.red"}),                    # not a number
    (Change(recover={"orange": 95}), {"tiers.orange.recover"}),       # recover past its threshold
    (Change(pending="five minutes"), {"pending"}),
    (Change(keep_firing="-5m"), {"keep_firing"}),
    (Change(tiers={"yellow": 95, "orange": 85}), {"tiers.orange"}),
], ids=["order", "nan", "recover", "pending", "negative", "two"])
def test_bad_values_are_refused_by_field(world, change, fields):
    s = world["service"]
    rid, _ = busiest_zone_rule(s)
    n = len(s.alert_store.threshold_versions())
    with pytest.raises(Refused) as e:
        s.save_threshold(rid, change, by="sup.a", reason="tuning", expected_version=n)
    got = {p.field for p in e.value.problems}
    assert fields <= got, (got, [str(p) for p in e.value.problems])
    assert len(s.alert_store.threshold_versions()) == n
    # the page says them in Chinese next to the field
    for p in e.value.problems:
        text = config_page.problem_text(p, "zh")
        assert re.search(r"[\u4e00-\u9fff]", text), text


def test_two_supervisors_the_second_save_is_refused_with_what_changed(world):
    s, audit = world["service"], world["audit"]
    rid, _ = busiest_zone_rule(s)
    loaded_a = s.threshold_describe(rid)["loaded_version"]
    loaded_b = s.threshold_describe(rid)["loaded_version"]              # both open the same rule
    v = s.save_threshold(rid, Change(tiers={"red": 97}), by="sup.a", reason="A: crowd plan for the evening",
                         expected_version=loaded_a)
    assert v.version == loaded_a + 1
    with pytest.raises(StaleVersion) as e:
        s.save_threshold(rid, Change(tiers={"red": 99}), by="sup.b", reason="B: my own idea",
                         expected_version=loaded_b)
    err = e.value.as_dict()
    assert err["expected_version"] == loaded_b and err["latest_version"] == v.version
    assert [x["author"] for x in err["saved_since"]] == ["sup.a"]
    assert any(c["path"] == f"override[{rid}].tiers.red" and c["new"] == 97 for c in err["changes"])
    assert s.alert_store.threshold_version().content["override"][rid]["tiers"]["red"] == 97   # A's stands
    assert audit[-1]["actor"] == "sup.b" and audit[-1]["outcome"] == "refused"
    # the page says it in words: who, and what they changed, with no rule id on screen
    words = config_page.Words(s, _names(s))
    text = _texts(config_page.stale_message(e.value, words, "zh"))
    assert "sup.a" in text and "A: crowd plan for the evening" in text and "红色触发值" in text
    assert rid not in text


def test_a_save_is_audited_with_before_and_after(world):
    s, audit = world["service"], world["audit"]
    rid, _ = busiest_zone_rule(s)
    latest = s.threshold_describe(rid)["loaded_version"]
    v = s.save_threshold(rid, Change(tiers={"red": 98}, pending="2m"), by="sup.c", reason="audit me",
                         expected_version=latest)
    a = audit[-1]
    assert (a["actor"], a["action"], a["outcome"]) == ("sup.c", "thresholds.save", "ok")
    assert a["object"] == ("thresholds", f"v{v.version}")
    assert a["before"]["version"] == latest and a["after"]["version"] == v.version
    assert a["after"]["override"][rid]["tiers"]["red"] == 98 and a["after"]["override"][rid]["for"] == "2m"
    assert a["before"]["override"][rid]["tiers"]["red"] == 97
    assert a["detail"]["reason"] == "audit me"
    with pytest.raises(NoChange):                       # the same again: nothing to save
        s.save_threshold(rid, Change(tiers={"red": 98}), by="sup.c", reason="again", expected_version=v.version)


def test_a_saved_threshold_changes_what_the_running_pipeline_raises_within_one_evaluation(world):
    s, feeder, audit = world["service"], world["feeder"], world["audit"]
    rid, value = busiest_zone_rule(s)
    before = s.threshold_describe(rid)
    was = [(st.status, st.tier) for st in states_of(s, rid)]          # blue at most with the everyday tiers
    assert all(t in (None, "blue") for _, t in was), was
    original = s.pipeline.rules[rid].tiers
    published = s.snapshot.version
    # a supervisor makes the rule strict enough that today's value is red, with no pending period
    strict = {"blue": round(value * 0.2, 1), "yellow": round(value * 0.3, 1), "orange": round(value * 0.4, 1),
              "red": round(value * 0.5, 1)}
    v = s.save_threshold(rid, Change(tiers=strict, pending="0s"), by="sup.d", reason="evening drill",
                         expected_version=before["loaded_version"])
    assert s.pipeline.thresholds_version == v.version, "the running pipeline took the new version at once"
    assert s.snapshot.version > published and s.snapshot.thresholds_version == v.version
    seen = feeder.watch(rid)
    try:
        feeder.run(60)
        assert seen, "no evaluation in a minute of event time"
        first_time, first = seen[0]
        assert first == [("firing", "red")], f"the first evaluation after the save ({first_time}): {first}"
        # rolled back to what it was: the first evaluation after it is as before the drill
        rb = s.rollback_thresholds(before["loaded_version"], by="sup.d", reason="drill over",
                                   expected_version=v.version)
        assert rb.version == v.version + 1 and s.pipeline.thresholds_version == rb.version
        assert s.pipeline.rules[rid].tiers == original
        assert audit[-1]["action"] == "thresholds.rollback" and audit[-1]["outcome"] == "ok"
        seen.clear()
        feeder.run(60)
        assert seen and seen[0][1] == was, f"the first evaluation after the rollback ({seen[0][0]}): {seen[0][1]}"
    finally:
        feeder.unwatch()
    hist = s.threshold_history()
    assert [h["version"] for h in hist][-2:] == [v.version, rb.version]
    assert hist[-1]["reason"].endswith("drill over") and hist[-1]["author"] == "sup.d"
    assert s.threshold_diff(before["loaded_version"], rb.version) == []


def test_a_rollback_needs_a_reason(world):
    s = world["service"]
    latest = len(s.alert_store.threshold_versions())
    with pytest.raises(Refused):
        s.rollback_thresholds(0, by="sup.e", reason=" ", expected_version=latest)
    assert len(s.alert_store.threshold_versions()) == latest


def test_the_backtest_over_the_service_history_is_bounded_and_says_what_it_covered(world):
    s = world["service"]
    rid, value = busiest_zone_rule(s)
    strict = Change(tiers={"blue": round(value * 0.2, 1), "yellow": round(value * 0.3, 1),
                           "orange": round(value * 0.4, 1), "red": round(value * 0.5, 1)})
    r = s.backtest_threshold(rid, strict, hours=6)
    w = r["window"]
    assert w["ticks"] > 0 and w["evaluations"] > 0 and w["first"] < w["last"]
    assert w["covered_hours"] <= w["hours"] + 1e-6 <= 6 + 1e-6
    assert r["elapsed_s"] < 3 * s.BACKTEST_BUDGET_S, r["elapsed_s"]
    assert r["proposed"]["alerts"] >= 1 and r["proposed"]["by_max_tier"].get("red", 0) >= 1
    assert r["proposed"]["alerts"] >= r["current"]["alerts"]
    assert len(r["series"]) == w["evaluations"] and set(r["lines"]["proposed"]) == {"blue", "yellow", "orange", "red"}
    assert r["lines"]["proposed"]["red"][0] == round(value * 0.5, 1)
    print(f"\nbacktest: {w['covered_hours']:.2f} h of history ({w['ticks']} ticks, {w['evaluations']} evaluations) "
          f"in {r['elapsed_s']:.2f} s; {r['s_per_hour']:.2f} s per hour measured")
    # a window longer than the budget allows is cut, and says so
    s._thresholds()["bt_s_per_hour"] = 100.0           # as if the machine were very busy
    r = s.backtest_threshold(rid, strict, hours=6)
    assert r["window"]["capped"] and r["window"]["hours"] < 6
    s._thresholds()["bt_s_per_hour"] = None            # measure again next time
    with pytest.raises(Refused) as e:
        s.backtest_threshold(rid, Change(tiers={"red": -1}), hours=1)
    assert {p.field for p in e.value.problems} == {"tiers.red"}


# ----------------------------------------------------------------------------- the callbacks
def _names(s: Service):
    from dashboard.views import Names
    from twin_assets import inventory as inv
    return Names.build(s.inventory, inv.frame(), s.alerts.case_cfg, s.alerts.plan_defs,
                       classes=getattr(getattr(s.catalog, "dims", None), "classes", None))


def _texts(component) -> str:
    """Every text a component tree shows (children strings), joined: what reaches the screen."""
    out = []

    def walk(x):
        if isinstance(x, (list, tuple)):
            for y in x:
                walk(y)
        elif isinstance(x, dict):
            if "props" in x:
                walk(x["props"].get("children"))
            else:
                walk(x.get("children"))
        elif hasattr(x, "to_plotly_json"):
            walk(x.to_plotly_json())
        elif isinstance(x, (str, int, float)) and not isinstance(x, bool):
            out.append(str(x))
    walk(component)
    return "\n".join(out)


@pytest.fixture(scope="module")
def web(world, tmp_path_factory):
    s = world["service"]
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    store = AccessStore(tmp_path_factory.mktemp("access") / "access.sqlite", hasher=fast)
    tokens = {}
    for name, role in (("sup1", "supervisor"), ("op1", "operator"), ("view1", "viewer"), ("adm1", "admin")):
        store.add_user(name, role, by="test", password=PASSWORD)
        tokens[role] = store.login(name, PASSWORD, client="test").token
    app = create_app(hub=SnapshotHub(), service=s, access=store)
    with TestClient(app.server, base_url=BASE, raise_server_exceptions=False) as client:
        yield {"app": app, "client": client, "tokens": tokens, "store": store}
    store.close()


def key_of(app, name: str) -> str:
    return next(k for k, spec in app.callback_map.items() if getattr(spec.get("callback"), "__name__", "") == name)


def call(web, role: str, name: str, values: dict | None = None, trigger: str | None = None):
    """POST one callback as dash-renderer does; values by "id.prop" (dict ids as JSON); returns
    (HTTP status, {output "id.prop": value})."""
    app, client = web["app"], web["client"]
    key = key_of(app, name)
    spec = app.callback_map[key]
    values = values or {}

    def item(i):
        cid = i["id"]
        ident = json.loads(cid) if cid.startswith("{") else cid
        return {"id": ident, "property": i["property"], "value": values.get(f"{cid}.{i['property']}")}
    parts = key[2:-2].split("...") if key.startswith("..") else [key]
    outputs = [{"id": p.rsplit(".", 1)[0], "property": p.rsplit(".", 1)[1].split("@")[0]} for p in parts]
    changed = [trigger] if trigger else [f"{i['id']}.{i['property']}" for i in spec["inputs"]][:1]
    body = {"output": key, "outputs": outputs if key.startswith("..") else outputs[0],
            "inputs": [item(i) for i in spec["inputs"]], "state": [item(i) for i in spec.get("state", [])],
            "changedPropIds": changed}
    client.cookies.clear()
    r = client.post("/_dash-update-component", content=json.dumps(body),
                    headers={"origin": BASE, "content-type": "application/json",
                             "cookie": f"{auth.COOKIE}={web['tokens'][role]}"})
    if r.status_code != 200:
        return r.status_code, {}
    resp = r.json().get("response", {})
    return 200, {f"{cid}.{prop}": v for cid, props in resp.items() for prop, v in props.items()}


def test_the_list_is_in_words_paged_and_searchable(web, world):
    s = world["service"]
    status, out = call(web, "supervisor", "_cfg_list", {"lang.value": "zh"})
    assert status == 200
    rows = out["cfg-list.children"]
    assert len(rows) == config_page.PAGE_SIZE, "a page, never all 1,373 rows"
    assert "1,373" in out["cfg-count.children"]
    status, out = call(web, "supervisor", "_cfg_list", {"cfg-search.value": "滨江东段 客流承载率 实时", "lang.value": "zh"},
                       trigger="cfg-search.value")
    (row,) = out["cfg-list.children"]
    rid = zone_indicator("crowd.load_rate", "riverside_east")
    assert row["props"]["data-rule"] == rid
    text = _texts(row)
    assert "客流承载率" in text and "滨江东段" in text and "越高越严重" in text and "目录" in text
    # no rule id or code in any text of a whole page of the list (ids only in attributes)
    status, out = call(web, "supervisor", "_cfg_list", {"cfg-family.value": "facility", "lang.value": "zh"},
                       trigger="cfg-family.value")
    text = _texts(out["cfg-list.children"])
    codes = re.findall(r"\b[a-z]+(?:_[a-z0-9]+)+\b|\b[a-z]+\.[a-z_]+\b|[a-z_]+-[a-z_]+-\d{4}", text)
    assert codes == [], codes[:10]
    assert len(s.threshold_search(family="facility")) > config_page.PAGE_SIZE
    status, out2 = call(web, "supervisor", "_cfg_list", {"cfg-family.value": "facility", "lang.value": "en",
                                                         "cfg-page-no.data": 0}, trigger="cfg-next.n_clicks")
    assert out2["cfg-page-no.data"] == 1 and out2["cfg-list.children"][0]["props"]["data-rule"] != \
        out["cfg-list.children"][0]["props"]["data-rule"]


def test_the_form_shows_problems_next_to_their_fields_and_saves_with_a_reason(web, world):
    s = world["service"]
    rid = zone_indicator("crowd.load_rate", "riverside_east")
    status, out = call(web, "supervisor", "_cfg_load", {"cfg-selected.data": rid, "lang.value": "zh"})
    loaded = out["cfg-loaded.data"]
    assert loaded["rule"] == rid and loaded["version"] == len(s.alert_store.threshold_versions())
    assert rid not in _texts(out["cfg-detail.children"])
    form = {"cfg-loaded.data": loaded, "lang.value": "zh", "cfg-profile.value": "",
            "cfg-red.value": "50", "cfg-reason.value": ""}
    status, out = call(web, "supervisor", "_cfg_submit", form, trigger="cfg-save.n_clicks")
    assert "橙色" in out["cfg-err-tiers-red.children"], out       # "must be ≥ orange (90)"
    assert out["cfg-err-reason.children"]
    assert "cfg-saved-rev.data" not in out, "nothing saved: the page does not refresh"
    n = len(s.alert_store.threshold_versions())
    status, out = call(web, "supervisor", "_cfg_submit", {**form, "cfg-red.value": "abc", "cfg-reason.value": "x"},
                       trigger="cfg-save.n_clicks")
    assert "abc" in out["cfg-err-tiers-red.children"] and not out["cfg-err-reason.children"]
    status, out = call(web, "supervisor", "_cfg_submit", {**form, "cfg-red.value": "96", "cfg-pending.value": "3分钟",
                                                          "cfg-reason.value": "<b>evening</b> plan",
                                                          "cfg-saved-rev.data": 4},
                       trigger="cfg-save.n_clicks")
    assert len(s.alert_store.threshold_versions()) == n + 1
    assert out["cfg-saved-rev.data"] == 5 and out["cfg-reason.value"] == ""
    latest = s.alert_store.threshold_version()
    assert latest.author == "sup1" and latest.comment == "<b>evening</b> plan"
    assert latest.content["override"][rid]["tiers"]["red"] == 96 and latest.content["override"][rid]["for"] == "3m"
    status, out = call(web, "supervisor", "_cfg_versions", {"lang.value": "zh"})
    first = out["cfg-versions.children"][0]
    text = _texts(first)
    assert "sup1" in text and "<b>evening</b> plan" in text and "红色触发值" in text and rid not in text
    # the same stale form again: refused, saying who saved since
    status, out = call(web, "supervisor", "_cfg_submit", {**form, "cfg-red.value": "95", "cfg-reason.value": "late"},
                       trigger="cfg-save.n_clicks")
    assert "sup1" in _texts(out["cfg-save-result.children"])
    assert len(s.alert_store.threshold_versions()) == n + 1


def test_a_supervisor_adds_a_night_profile_drops_it_and_switches_a_rule_off_from_the_page(web, world):
    """Calendar profiles from the page: a new one on days and hours (what the Golden Week profile
    is on dates), the rule then in force by that calendar; a bad hour range refused by its field;
    the profile dropped again; the rule switched off and on.  Each a version with its reason."""
    s = world["service"]
    rid = zone_indicator("crowd.load_rate", "media_port_plaza")

    def load():
        status, out = call(web, "supervisor", "_cfg_load", {"cfg-selected.data": rid, "lang.value": "zh"})
        assert status == 200
        return out
    out = load()
    assert "+new" in [o["value"] for o in out["cfg-profile.options"]]
    assert {"golden_week", "+custom"} <= {o["value"] for o in out["cfg-new-cal.options"]}
    loaded = out["cfg-loaded.data"]
    status, boxes = call(web, "supervisor", "_cfg_profile_boxes", {"cfg-profile.value": "+new",
                                                                  "cfg-new-cal.value": "+custom"})
    assert "st-cfg-hidden" not in boxes["cfg-new-box.className"] + boxes["cfg-custom-box.className"]
    assert "st-cfg-hidden" in boxes["cfg-drop-box.className"]
    form = {"cfg-loaded.data": loaded, "lang.value": "zh", "cfg-profile.value": "+new", "cfg-new-name.value": "夜间",
            "cfg-new-cal.value": "+custom", "cfg-new-days.value": ["sat", "sun"], "cfg-new-hours.value": "22:00-6:00",
            "cfg-enabled.value": ["on"], "cfg-red.value": "95", "cfg-reason.value": "周末夜间人少，提前告警"}
    # a bad range is refused next to the calendar field; an empty name next to the name
    status, out = call(web, "supervisor", "_cfg_submit", {**form, "cfg-new-hours.value": "22点以后"},
                       trigger="cfg-save.n_clicks")
    assert "22点以后" in out["cfg-err-calendar.children"], out
    status, out = call(web, "supervisor", "_cfg_submit", {**form, "cfg-new-name.value": " "},
                       trigger="cfg-save.n_clicks")
    assert out["cfg-err-profile.children"] and "cfg-saved-rev.data" not in out
    n = len(s.alert_store.threshold_versions())
    status, out = call(web, "supervisor", "_cfg_submit", form, trigger="cfg-save.n_clicks")
    assert len(s.alert_store.threshold_versions()) == n + 1, {k: v for k, v in out.items() if v}
    p = s.alert_store.threshold_version().content["override"][rid]["profiles"]
    assert p == [{"name": "夜间", "calendar": {"weekdays": ["sat", "sun"], "hours": ["22:00-06:00"]},
                  "tiers": {"red": 95.0}}], p
    rule = s.threshold_book().rules(s.alert_store.threshold_version().content)[rid]
    sat_night = datetime(2026, 4, 18, 23, 0, tzinfo=timezone(timedelta(hours=8)))     # a Saturday
    name, tiers = rule.active(sat_night)
    assert name == "夜间" and {t.name: t.threshold for t in tiers}["red"] == 95.0
    assert rule.active(sat_night - timedelta(hours=3))[0] == "default"
    out = load()
    label = next(o["label"] for o in out["cfg-profile.options"] if o["value"] == "夜间")
    assert "周六、周日" in label and "22:00–06:00" in label, label
    # the same name again is refused: pick it instead
    status, again = call(web, "supervisor", "_cfg_submit", {**form, "cfg-loaded.data": out["cfg-loaded.data"]},
                         trigger="cfg-save.n_clicks")
    assert "夜间" in again["cfg-err-profile.children"]
    # dropped
    status, _ = call(web, "supervisor", "_cfg_submit",
                     {"cfg-loaded.data": out["cfg-loaded.data"], "lang.value": "zh", "cfg-profile.value": "夜间",
                      "cfg-drop.value": ["on"], "cfg-enabled.value": ["on"], "cfg-reason.value": "试行结束"},
                     trigger="cfg-save.n_clicks")
    assert s.alert_store.threshold_version().content["override"][rid]["profiles"] == []
    # switched off, then on
    out = load()
    status, _ = call(web, "supervisor", "_cfg_submit",
                     {"cfg-loaded.data": out["cfg-loaded.data"], "lang.value": "zh", "cfg-profile.value": "",
                      "cfg-enabled.value": [], "cfg-reason.value": "施工封闭"}, trigger="cfg-save.n_clicks")
    assert s.alert_store.threshold_version().content["override"][rid]["enabled"] is False
    assert s.threshold_describe(rid)["enabled"]["value"] is False
    out = load()
    assert out["cfg-loaded.data"]["enabled"] is False
    status, _ = call(web, "supervisor", "_cfg_submit",
                     {"cfg-loaded.data": out["cfg-loaded.data"], "lang.value": "zh", "cfg-profile.value": "",
                      "cfg-enabled.value": ["on"], "cfg-reason.value": "施工结束"}, trigger="cfg-save.n_clicks")
    assert s.threshold_describe(rid)["enabled"]["value"] is True


@pytest.mark.parametrize("role", ["operator", "viewer", "admin"])
def test_other_roles_calling_the_config_callbacks_are_refused_on_the_server(web, world, role):
    s = world["service"]
    app = web["app"]
    names = [getattr(spec.get("callback"), "__name__", "") for spec in app.callback_map.values()]
    config = [n for n in names if n.startswith("_cfg_")]
    assert len(config) == 9, config
    n = len(s.alert_store.threshold_versions())
    rid = zone_indicator("crowd.load_rate", "riverside_east")
    loaded = {"rule": rid, "version": n, "tiers": {"": {"red": [100, 100]}}}
    for name in config:
        status, out = call(web, role, name, {"cfg-loaded.data": loaded, "cfg-red.value": "99",
                                             "cfg-reason.value": "not mine to change", "lang.value": "zh",
                                             "cfg-versions-at.data": n, "cfg-rb-reason.value": "nope"})
        assert status == 403 and out == {}, (name, role, status)
    assert len(s.alert_store.threshold_versions()) == n
    # and the functions themselves, past the middleware: the role is checked again inside
    from dash import Dash
    from dash.exceptions import PreventUpdate
    cbs = config_page.register(Dash(__name__), s, _names(s))
    token = auth.CURRENT.set(auth.Identity(f"{role}.x", role))
    try:
        for name, fn in cbs.items():
            with pytest.raises(PreventUpdate):
                fn()
    finally:
        auth.CURRENT.reset(token)
    assert len(s.alert_store.threshold_versions()) == n


def test_the_config_route_is_for_supervisors(web):
    client, tokens = web["client"], web["tokens"]
    for role, ok in (("supervisor", True), ("operator", False), ("viewer", False), ("admin", False)):
        client.cookies.clear()
        r = client.get("/config", headers={"cookie": f"{auth.COOKIE}={tokens[role]}"}, follow_redirects=False)
        assert (r.status_code == 200) == ok, (role, r.status_code)
    client.cookies.clear()
    r = client.get("/config", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    # the page callback (_route) itself gives the denied page to a role without it
    app = web["app"]
    key = key_of(app, "_route")
    for role, want in (("supervisor", "st-config"), ("operator", "st-denied")):
        status, out = call(web, role, "_route", {"url.pathname": "/config", "lang-store.data": "zh"})
        assert out["page.children"]["props"]["className"] == want, role
    assert key


def test_a_backtest_that_fails_says_so_on_the_page(web, world, monkeypatch):
    """A fault while the backtest runs (say a history file gone under it) is shown next to the
    buttons; the supervisor is not left looking at an empty result."""
    s = world["service"]
    rid = zone_indicator("crowd.load_rate", "riverside_east")
    status, out = call(web, "supervisor", "_cfg_load", {"cfg-selected.data": rid, "lang.value": "zh"})
    form = {"cfg-loaded.data": out["cfg-loaded.data"], "lang.value": "zh", "cfg-profile.value": "",
            "cfg-red.value": "96"}

    def broken(*a, **k):
        raise FileNotFoundError("part-1-2.parquet")
    monkeypatch.setattr(s, "backtest_threshold", broken)
    status, out = call(web, "supervisor", "_cfg_submit", form, trigger="cfg-backtest.n_clicks")
    assert status == 200
    assert "操作失败" in out["cfg-err-general.children"], out
