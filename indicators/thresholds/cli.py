"""``scenic-twin thresholds show|set|backtest|learn|versions|diff|rollback``.

The threshold versions live in the alert store (``--store``, default
``var/alerts.sqlite``); saves and rollbacks are also written to the account
store's audit trail (``--access-store``, default ``var/access.sqlite`` when it
exists) with who, before and after.  ``--var DIR`` moves both (and the tick
history ``history/`` the backtest reads by default); SCENIC_TWIN_VAR
replaces ``var/``.  The running service applies a saved version at its next
evaluation.

Exit codes: 0 done, 1 refused (validation with the reason per field, no
reason given, a stale ``--expect-version``), 2 usage (unknown id or
version, missing store or history).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def _usage(message: str) -> int:
    """Say what is wrong with the command line (unknown id or version, missing store) and exit 2."""
    print(f"scenic-twin thresholds: {message}", file=sys.stderr)
    return EXIT_USAGE


# --------------------------------------------------------------------------- paths and stores
def _var(args) -> Path:
    from indicators.alerts.store import default_store_path
    return Path(args.var) if args.var else default_store_path().parent


def _store_path(args) -> str | Path:
    """--store (a path or postgresql://…), SCENIC_TWIN_STORE unless --var names the folder, var/alerts.sqlite."""
    from indicators import sqlstore
    if args.var and not args.store:
        return _var(args) / "alerts.sqlite"
    return sqlstore.cli_target(args.store, _var(args) / "alerts.sqlite")


def _where(args) -> str:
    from indicators import sqlstore
    p = _store_path(args)
    return sqlstore.describe(p) + (f" (area {sqlstore.cli_area(args.area)})" if sqlstore.is_postgres(p) else "")


def _open_store(args, *, create: bool = False):
    from indicators import sqlstore
    from indicators.alerts.store import AlertStore
    p, area = _store_path(args), sqlstore.cli_area(args.area)
    if not create and not sqlstore.exists(p, schema=f"area_{area}"):
        return None
    return AlertStore.open(p, area=area)


def _audit(args, author: str):
    """(audit callable or None, the access store to close or None)."""
    from indicators import sqlstore
    from indicators.access.store import AccessStore

    from .versions import os_user
    if args.access_store:
        path = sqlstore.cli_target(args.access_store, Path())
    else:
        store = _store_path(args)
        if sqlstore.is_postgres(store):             # the platform's one database holds both
            path = store
        else:
            path = Path(args.var) / "access.sqlite" if args.var else None
            if path is None:
                from indicators.access.store import default_path
                path = default_path()
        if not sqlstore.exists(path, schema="access"):
            print(f"(no account store at {sqlstore.describe(path)}: the save is recorded in the alert store's "
                  "trail only; --access-store PATH to name one)", file=sys.stderr)
            return None, None
    st = AccessStore.open(path)
    who = os_user()

    def audit(actor, action, object_type, object_id, *, before=None, after=None, detail=None, outcome="ok"):
        st.record(actor, action, object_type, object_id, before=before, after=after, outcome=outcome,
                  client="cli", detail={**(detail or {}), "os_user": who})
    return audit, st


def _author(args) -> str:
    from .versions import os_user
    return args.by if args.by is not None else os_user()


# --------------------------------------------------------------------------- output helpers
def _dur(s: float) -> str:
    s = float(s)
    if s == 0:
        return "0s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return "".join(f"{v:g}{u}" for v, u in ((h, "h"), (m, "m"), (sec, "s")) if v)


def _num(x: float) -> str:
    return f"{x:g}"


def _tiers_text(tiers: dict) -> str:
    return "  ".join(f"{n} {_num(t['threshold'])}" + (f" (recover {_num(t['recover'])})"
                                                      if t["recover"] != t["threshold"] else "")
                     for n, t in tiers.items())


def _describe_lines(d: dict) -> list[str]:
    head = f"{d['id']}  {d['name_zh']} / {d['name_en']}" + (f" ({d['unit']})" if d["unit"] else "")
    ver = f"threshold version {d['version']}" if d["version"] else "no saved version"
    out = [head, f"  family {d['family']}, feed {d['feed']}, level {d['level']}, side {d['side']}; {ver}"]

    def row(label: str, value: str, source: str) -> None:
        out.append(f"  {label:13s} {value:34s} <- {source}")
    row("direction", d["direction"]["value"], d["direction"]["source"])
    for name, t in d["tiers"].items():
        value = _num(t["threshold"]) + (f", recover {_num(t['recover'])}" if t["recover"] != t["threshold"] else "")
        row(name, value, t["source"])
    row("pending", _dur(d["pending"]["seconds"]), d["pending"]["source"])
    row("keep firing", _dur(d["keep_firing"]["seconds"]), d["keep_firing"]["source"])
    row("no data", d["nodata"]["value"], d["nodata"]["source"])
    row("error", d["error"]["value"], d["error"]["source"])
    esc = ", ".join(f"{k} {_dur(v)}" for k, v in d["escalate_after"]["seconds"].items())
    row("escalate", esc, d["escalate_after"]["source"])
    row("enabled", "yes" if d["enabled"]["value"] else "NO", d["enabled"]["source"])
    sch = d.get("schedule")
    if sch:
        h = sch["hours"]
        if not isinstance(h, dict):
            when = "always" if h is None else str(h)
        elif h.get("kind") == "hours":
            when = "{:02d}:{:02d}-{:02d}:{:02d} local".format(*divmod(h["start_min"], 60), *divmod(h["end_min"], 60))
        else:
            when = f"sunset +{_dur(h['after_sunset_min'] * 60)} to sunrise -{_dur(h['before_sunrise_min'] * 60)}"
        row("schedule", f"{sch['class']}: {when}", sch["source"])
    if not d["profiles"]:
        out.append("  profiles      none")
    out.extend(_rationale_lines(d.get("rationale")))
    for p in d["profiles"]:
        cal = p["calendar"]
        dates = cal.get("dates") or []
        when = ", ".join(filter(None, [
            f"{len(dates)} dates {dates[0]} … {dates[-1]}" if len(dates) > 1 else (dates[0] if dates else ""),
            " ".join(cal.get("weekdays") or []), " ".join(cal.get("hours") or [])]))
        out.append(f"  profile {p['name']} on calendar {cal.get('name') or '(inline)'} ({when}) <- {p['source']}")
        out.append(f"      {_tiers_text(p['tiers'])}")
        if cal.get("note"):
            out.append(f"      calendar source: {cal['note']}")
    return out


def _rationale_lines(r: dict | None) -> list[str]:
    """Each tier's cause, consequence, action, time to act, priority and source
    (cause and source only when they change from the tier before)."""
    if not r:
        return ["  rationale     none: no entry in data/alerts/rationale.toml (priority by tier)"]
    out = [f"  rationale     <- {r['file']}"]
    cause = source = None
    for name, j in r["tiers"].items():
        if j["log_only"]:
            what = "log only (no operator action: an event for the log, not an alert)"
        elif j["advisory"]:
            what = "advisory (IV级: shown and logged, pages nobody)"
        else:
            what = (f"{j['priority']}: {j['consequence']}, act within {j['time_to_act_min']:g} min ({j['band']}) - "
                    f"{j['action_en']} / {j['action_zh']}")
        out.append(f"    {name:7s} {what}")
        if j["cause"] != cause:
            out.append(f"            cause: {j['cause']}")
            cause = j["cause"]
        if j["source"] != source:
            out.append(f"            source: {j['source']}")
            source = j["source"]
    return out


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def _refused(args, problems, extra: dict | None = None) -> int:
    if args.json:
        _print_json({"saved": False, "problems": [p.as_dict() for p in problems], **(extra or {})})
    print("refused:", file=sys.stderr)
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    return EXIT_REFUSED


def _conflict(args, err) -> int:
    if args.json:
        _print_json({"saved": False, "conflict": err.as_dict(), "message": str(err)})
    print(f"scenic-twin thresholds: {err}", file=sys.stderr)
    return EXIT_REFUSED


# --------------------------------------------------------------------------- change options
def _pairs(kind: str, cast):
    def parse(text: str):
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"{text!r}: write {kind} as NAME=VALUE, e.g. red=95")
        try:
            return name.strip(), cast(value.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a number") from None
    return parse


def _change(args):
    from .edit import Change
    return Change(tiers=dict(args.tier or []), recover=dict(args.recover or []), pending=args.pending,
                  keep_firing=args.keep_firing, direction=args.direction, nodata=args.nodata, error=args.error,
                  enabled=args.enabled, escalate_after=dict(args.escalate or []), profile=args.profile,
                  calendar=args.calendar, drop_profile=args.drop_profile, no_profiles=args.no_profiles,
                  reset=args.reset)


def _add_change_options(p) -> None:
    p.add_argument("id", help="indicator id, e.g. crowd.load_rate:zone=west_plaza@now (or an unambiguous start)")
    p.add_argument("--tier", action="append", type=_pairs("a tier", float), metavar="NAME=VALUE",
                   help="a tier's threshold (blue, yellow, orange, red); repeatable")
    p.add_argument("--recover", action="append", type=_pairs("a recover value", float), metavar="NAME=VALUE",
                   help="a tier's recovery threshold (hysteresis: the alert holds until the value is back past "
                        "it); repeatable")
    p.add_argument("--pending", default=None, metavar="DUR", help="pending period before firing, e.g. 5m")
    p.add_argument("--keep-firing", default=None, metavar="DUR", help="keep firing this long after clearing")
    p.add_argument("--direction", default=None, help="above (higher is worse) or below")
    p.add_argument("--nodata", default=None, help="no-data policy: nodata, alerting, ok, keep_last")
    p.add_argument("--error", default=None, help="error policy: error, alerting, ok, keep_last")
    on = p.add_mutually_exclusive_group()
    on.add_argument("--enable", dest="enabled", action="store_const", const=True, default=None)
    on.add_argument("--disable", dest="enabled", action="store_const", const=False,
                    help="stop evaluating the rule")
    p.add_argument("--escalate", action="append", type=_pairs("an escalation", str), metavar="TIER=DUR",
                   help="escalate an unacknowledged alert of this tier after DUR; repeatable")
    p.add_argument("--profile", default=None, metavar="NAME",
                   help="--tier/--recover change this profile's tiers (created when new, needs --calendar)")
    p.add_argument("--calendar", default=None, metavar="NAME", help="the profile's calendar, e.g. golden_week")
    p.add_argument("--drop-profile", action="store_true", help="remove the profile named by --profile")
    p.add_argument("--no-profiles", action="store_true", help="switch every profile of the rule off")
    p.add_argument("--reset", action="store_true",
                   help="first drop the saved override: back to the shipped and catalog defaults")


def _add_common(p, *, write: bool = False) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--store", default=None, help="alert store holding the versions: a file path or postgresql://… "
                                                 "(default SCENIC_TWIN_STORE, else var/alerts.sqlite)")
    p.add_argument("--area", default=None, help="on PostgreSQL: the scenic area (default SCENIC_TWIN_AREA or "
                                                "canton-tower)")
    p.add_argument("--var", default=None, help="state folder (default var/ or SCENIC_TWIN_VAR)")
    if write:
        p.add_argument("--by", default=None, metavar="USER", help="who saves (default: the OS user name)")
        p.add_argument("--reason", default=None, help="why (required; kept with the version and in the audit)")
        p.add_argument("--expect-version", type=int, default=None, metavar="N",
                       help="the version you looked at; the save is refused if someone saved since")
        p.add_argument("--access-store", default=None,
                       help="account store whose audit trail records the save (default var/access.sqlite "
                            "when it exists)")


# --------------------------------------------------------------------------- commands
def _latest(args) -> tuple[int, dict]:
    from .versions import content
    st = _open_store(args)
    if st is None:
        return 0, {}
    with st:
        return content(st, None)


def _cmd_show(args) -> int:
    from . import default_book
    from .book import UnknownRule
    from .versions import content
    book = default_book()
    st = _open_store(args)
    try:
        version, doc = content(st, args.version) if st is not None else (0, {})
    except KeyError as e:
        return _usage(str(e.args[0]))
    finally:
        if st is not None:
            st.close()
    if args.id:
        try:
            d = book.describe(args.id, doc, version=version or None)
        except UnknownRule as e:
            return _usage(str(e))
        if args.json:
            _print_json(d)
        else:
            print("\n".join(_describe_lines(d)))
        return EXIT_OK
    rows = book.search(doc, text=args.search, family=args.family, zone=args.zone, feed=args.feed,
                       level=args.level, side=args.side, limit=args.limit)
    if args.json:
        _print_json(rows)
        return EXIT_OK
    for r in rows:
        tiers = " ".join(f"{k[0]}{_num(v)}" for k, v in r["tiers"].items())
        flags = ("*" if r["overridden"] else " ") + ("" if r["enabled"] else " disabled")
        prof = f" [{', '.join(r['profiles'])}]" if r["profiles"] else ""
        print(f"{flags} {r['id']:58s} {r['direction']:5s} {tiers:30s} {_dur(r['pending_s']):>5s}{prof}  "
              f"{r['name_zh']}")
    print(f"{len(rows)} rule(s); * = overridden (shipped or saved), version {version or 'none'}", file=sys.stderr)
    return EXIT_OK


def _cmd_set(args) -> int:
    from . import default_book, set_rule
    from .edit import NoChange, Refused
    from .versions import StaleVersion
    book = default_book()
    author = _author(args)
    audit, access = _audit(args, author)
    try:
        with _open_store(args, create=True) as st:
            try:
                v = set_rule(st, args.id, _change(args), author=author, reason=args.reason or "",
                             expected_version=args.expect_version, audit=audit, book=book)
            except NoChange as e:
                if args.json:
                    _print_json({"saved": False, "message": str(e.problems[0].message)})
                print(e.problems[0].message, file=sys.stderr)
                return EXIT_OK
            except Refused as e:
                return _refused(args, e.problems)
            except StaleVersion as e:
                return _conflict(args, e)
            except KeyError as e:                        # --expect-version names no version
                return _usage(str(e.args[0]))
            rid = book.resolve(args.id)
            d = book.describe(rid, v.content, version=v.version)
            prev = st.threshold_version(v.version - 1) if v.version > 1 else None
    finally:
        if access is not None:
            access.close()
    from .versions import diff
    changes = [str(c) for c in diff(prev.content if prev else {}, v.content)]
    if args.json:
        _print_json({"saved": True, "version": v.version, "author": v.author, "reason": v.comment,
                     "changes": changes, "rule": d})
    else:
        print(f"saved threshold version {v.version} by {v.author}: {v.comment}")
        for c in changes:
            print(f"  {c}")
        print("\n".join(_describe_lines(d)))
        print("the running service applies it at its next evaluation", file=sys.stderr)
    return EXIT_OK


def _cmd_backtest(args) -> int:
    from datetime import timedelta

    from indicators.alerts.rules import parse_duration

    from . import backtest, default_book
    from .book import UnknownRule
    from .edit import validate_change
    book = default_book()
    try:
        rid = book.resolve(args.id)
    except UnknownRule as e:
        return _usage(str(e))
    version, current = _latest(args)
    proposed, problems = validate_change(book, current, rid, _change(args))
    if problems:
        return _refused(args, problems)
    source = Path(args.recording) if args.recording else Path(args.history) if args.history else _var(args) / "history"
    if not source.exists():
        print(f"scenic-twin thresholds: no tick history at {source}; run the service to collect one, or pass "
              "--recording DIR (from `scenic-twin simulate`) or --history DIR", file=sys.stderr)
        return EXIT_USAGE
    r = backtest(source, current, proposed, focus=[rid], days=args.days, progress=not args.json,
                 alerts_every=timedelta(seconds=parse_duration(args.alerts_every)),
                 only=[rid] if args.rule_only else None)
    r["rule"] = rid
    r["current_version"] = version or None
    r["thresholds"] = {side: {k: d[k] for k in ("direction", "tiers", "profiles")}
                       for side, d in (("current", book.describe(rid, current)),
                                       ("proposed", book.describe(rid, proposed)))}
    if args.json:
        _print_json(r)
        return EXIT_OK
    cur, new = (r[s]["per_rule"].get(rid, {"alerts": 0, "by_max_tier": {}}) for s in ("current", "proposed"))
    print(f"{rid}: {r['kind']} {r['source']}, {r['first_tick']} – {r['last_tick']}, {r['evaluations']} evaluations")
    print(f"  proposed thresholds would have raised {new['alerts']} alert(s) ({new['by_max_tier'].get('red', 0)} red) "
          f"where the current ones raised {cur['alerts']} ({cur['by_max_tier'].get('red', 0)} red)")
    print(f"  by highest tier: current {cur['by_max_tier']}  proposed {new['by_max_tier']}")
    if not args.rule_only:
        print(f"  all threshold rules: current {r['current']['alerts']} alerts {r['current']['by_max_tier']}; "
              f"proposed {r['proposed']['alerts']} alerts {r['proposed']['by_max_tier']}")
    print(f"  took {r['elapsed_s']:.1f} s" + (" (the engine ran once for both)" if r["engine_runs"] else
                                                " (stored ticks, no engine)"))
    return EXIT_OK


def _cmd_versions(args) -> int:
    from .versions import history
    st = _open_store(args)
    rows = []
    if st is not None:
        with st:
            rows = [v.__dict__ for v in history(st)]
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("no saved threshold version: the shipped defaults apply")
    for v in rows:
        print(f"v{v['version']:<4d} {v['at']}  {v['author']:16s} {v['reason']}")
        for c in v["changes"]:
            print(f"        {c}")
    return EXIT_OK


def _cmd_diff(args) -> int:
    from .versions import change_dict, content, diff
    st = _open_store(args)
    try:
        if st is not None:
            a, b = content(st, args.a), content(st, args.b)
        elif args.a == 0 and not args.b:
            a = b = (0, {})
        else:
            raise KeyError(f"no alert store at {_where(args)}: no saved version yet")
    except KeyError as e:
        return _usage(str(e.args[0]))
    finally:
        if st is not None:
            st.close()
    changes = diff(a[1], b[1])
    if args.json:
        _print_json({"from": a[0], "to": b[0], "changes": [change_dict(c) for c in changes]})
    else:
        print(f"v{a[0]} -> v{b[0]}: {len(changes)} change(s)")
        for c in changes:
            print(f"  {c}")
    return EXIT_OK


def _cmd_rollback(args) -> int:
    from . import default_book, rollback
    from .edit import Refused
    from .versions import StaleVersion
    author = _author(args)
    audit, access = _audit(args, author)
    try:
        st = _open_store(args)
        if st is None:
            return _usage(f"no alert store at {_where(args)}")
        with st:
            try:
                v = rollback(st, args.version, author, args.reason or "", book=default_book(),
                             expected_version=args.expect_version, audit=audit)
            except Refused as e:
                return _refused(args, e.problems)
            except StaleVersion as e:
                return _conflict(args, e)
            except KeyError as e:
                return _usage(str(e.args[0]))
    finally:
        if access is not None:
            access.close()
    if args.json:
        _print_json({"saved": True, "version": v.version, "author": v.author, "reason": v.comment,
                     "rolled_back_to": args.version})
    else:
        print(f"saved threshold version {v.version} = the document of v{args.version} ({v.comment})")
    return EXIT_OK


def _cmd_learn(args) -> int:
    from datetime import date

    from indicators.engine.plan import QUALITY_NAMES

    from . import default_book, norms
    from .backtest import history_ticks
    from .edit import Refused
    from .versions import StaleVersion, diff, save
    book = default_book()
    version, saved = _latest(args)
    families = args.family or list(norms.DEFAULT_FAMILIES)
    from indicators.catalog import load_catalog
    catalog = load_catalog()
    try:
        ids = norms.family_ids(catalog, families)
    except KeyError as e:
        return _usage(str(e.args[0]))
    cal = (book.effective(saved).get("calendars") or {}).get(args.holidays) if args.holidays else None
    if args.holidays and cal is None:
        return _usage(f"no threshold calendar {args.holidays!r} (`scenic-twin thresholds show ID` lists a rule's "
                      "calendars; --holidays '' for none)")
    holidays = {date.fromisoformat(str(d)) for d in (cal or {}).get("dates", [])}
    say = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    if args.recording:
        src = Path(args.recording)
        if not src.is_dir():
            return _usage(f"no recording at {src} (a folder from `scenic-twin simulate`)")
        say(f"learning {', '.join(families)} ({len(ids)} indicators) from the recording {src} ...")
        ticks = norms.recording_ticks(src, catalog, families, progress=lambda t: say(f"  {t:%Y-%m-%d %H:%M}Z"))
        pos = [catalog.index(i) for i in ids]
    else:
        src = Path(args.history) if args.history else _var(args) / "history"
        if not src.exists():
            return _usage(f"no tick history at {src}; run the service to collect one, or pass --recording DIR "
                          "(from `scenic-twin simulate`) or --history DIR")
        from indicators.thresholds.backtest import _history_end
        end = _history_end(src)
        start = None if end is None or args.days is None else end - int(args.days * 86_400_000)
        say(f"learning {', '.join(families)} ({len(ids)} indicators) from the tick history {src} ...")
        ticks, pos = history_ticks(src, ids, start), None
    learnt = norms.learn(ticks, ids, pos, z=args.z, holidays=holidays, ok_code=QUALITY_NAMES.index("ok"))
    if learnt.samples == 0:
        return _usage(f"nothing to learn from in {src}: no tick on a 5-minute mark")
    from indicators.alerts.rationale import default_rationale
    prop = norms.propose(learnt, book.rules(saved), saved, min_days=args.min_days,
                         eligible=norms.learnable(book.rationale or default_rationale()))
    span_days = (learnt.last - learnt.first).total_seconds() / 86400 if learnt.first else 0.0
    out: dict[str, Any] = {"source": str(src), "families": families, "indicators": len(ids),
                           "first": learnt.first, "last": learnt.last, "days": round(span_days, 2),
                           "samples": learnt.samples, "z": args.z, "min_days": args.min_days,
                           "holidays": args.holidays or None, "based_on_version": version, **prop.summary(),
                           "changed": prop.changed, "saved": False}
    if args.out:
        Path(args.out).write_text(json.dumps(prop.doc, ensure_ascii=False, indent=2), encoding="utf-8")
        out["written"] = args.out
    if args.save:
        author = _author(args)
        audit, access = _audit(args, author)
        try:
            with _open_store(args, create=True) as st:
                try:
                    v = save(st, book, prop.doc, author=author, reason=args.reason or "",
                             expected_version=version if args.expect_version is None else args.expect_version,
                             audit=audit, action="thresholds.learn",
                             detail={"families": families, "source": str(src), "z": args.z,
                                     "min_days": args.min_days, **prop.summary()})
                except Refused as e:
                    return _refused(args, e.problems)
                except StaleVersion as e:
                    return _conflict(args, e)
        finally:
            if access is not None:
                access.close()
        out.update(saved=True, version=v.version, changes=len(diff(saved, prop.doc)))
    if args.json:
        _print_json(out)
        return EXIT_OK
    print(f"learnt from {src}: {learnt.first:%Y-%m-%d %H:%M} – {learnt.last:%Y-%m-%d %H:%M} UTC "
          f"({span_days:.1f} days, {learnt.samples} samples of {len(ids)} indicators)")
    print(f"  {out['rules_changed']} rule(s) would start above their usual level in {out['profiles']} "
          f"place-and-hour profile(s) (largest shift +{out['largest_shift']}); {out['rules_unchanged']} stay at "
          f"the catalog's tiers" + (f"; {out['rules_with_thin_slots']} have hours seen on fewer than "
                                     f"{args.min_days} days (left at the catalog's tiers there)"
                                     if out["rules_with_thin_slots"] else "")
          + (f"; {out['rules_not_learnt']} not learnt (a detection of harm counts however usual; or log only)"
             if out["rules_not_learnt"] else ""))
    top = sorted(prop.changed.items(), key=lambda kv: -max(p["shift"] for p in kv[1]))[:args.top]
    for iid, ps in top:
        print(f"  {iid}")
        for p in ps:
            print(f"    {p['kind']:<8} {p['hours']}  +{p['shift']}  tiers {p['tiers']}")
    if args.save:
        print(f"saved threshold version {out['version']} by {_author(args)}: {args.reason}")
        print("the running service applies it at its next evaluation", file=sys.stderr)
    elif out["rules_changed"]:
        print("nothing saved: --save --reason TEXT stores it as a new version (backtest first: "
              "`scenic-twin thresholds backtest`); --out FILE writes the document", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------- registration
def register(sub) -> None:
    """Add ``thresholds`` to the ``scenic-twin`` subcommands."""
    th = sub.add_parser("thresholds", help="alert thresholds: show, set, backtest, learn, versions, diff, rollback",
                        description="The alert thresholds of the 1,373 indicators: catalog defaults, the shipped "
                                    "profiles (data/alerts/thresholds.toml: Golden Week) and the supervisors' "
                                    "saved versions.  Exit codes: 0 done, 1 refused, 2 usage.")
    ts = th.add_subparsers(dest="thresholds_command", required=True, metavar="ACTION")

    s = ts.add_parser("show", help="one rule with where each value comes from, or a filtered list",
                      description="With ID: the rule in force (tiers, recover, direction, pending, keep-firing, "
                                  "policies, escalation, profiles and calendars) and the source of each part.  "
                                  "Without: the rules matching --search/--family/--zone/--feed/--level/--side.")
    s.add_argument("id", nargs="?", default=None)
    s.add_argument("--search", default=None, metavar="TEXT", help="in the id or the Chinese or English name")
    s.add_argument("--family", default=None, help="a family id, or a prefix such as crowd")
    s.add_argument("--zone", default=None)
    s.add_argument("--feed", default=None)
    s.add_argument("--level", default=None, help="city, district or scenic_area")
    s.add_argument("--side", default=None, help="government, enterprise or society")
    s.add_argument("--limit", type=int, default=None)
    s.add_argument("--version", type=int, default=None, help="as of this saved version (0: shipped defaults)")
    _add_common(s)
    s.set_defaults(func=_cmd_show)

    st = ts.add_parser("set", help="change one rule and save a new version (needs --reason)",
                       description="Change one rule and save the result as a new threshold version.  Refused "
                                   "(exit 1) without --reason, with the reason per field when a value is invalid, "
                                   "and when someone saved since --expect-version (with what they changed).")
    _add_change_options(st)
    _add_common(st, write=True)
    st.set_defaults(func=_cmd_set)

    b = ts.add_parser("backtest", help="alerts the current and the changed thresholds would have raised",
                      description="Run the current thresholds and the changed ones over the same history (the "
                                  "service's tick history, or a recording) through the alert pipeline: alerts "
                                  "raised, by tier, for the rule and for all rules.  Nothing is saved.")
    _add_change_options(b)
    b.add_argument("--recording", default=None, metavar="DIR", help="a recording from `scenic-twin simulate` "
                                                                     "(runs the engine once; slower)")
    b.add_argument("--history", default=None, metavar="DIR", help="a tick history folder (default var/history)")
    b.add_argument("--days", type=float, default=None, help="only the last N days")
    b.add_argument("--rule-only", action="store_true",
                   help="evaluate only this rule (its numbers are the same, totals then cover only it; several "
                        "times faster over long histories)")
    b.add_argument("--alerts-every", default="15s", help="evaluation interval in event time (default 15s)")
    _add_common(b)
    b.set_defaults(func=_cmd_backtest)

    v = ts.add_parser("versions", help="saved versions: who, when, why, what changed",
                      description="Every saved threshold version with its author, time, reason and changes.")
    _add_common(v)
    v.set_defaults(func=_cmd_versions)

    d = ts.add_parser("diff", help="what changed between two versions",
                      description="Changed paths between version A and version B (default: the latest); 0 is "
                                  "the shipped defaults (no saved version).")
    d.add_argument("a", type=int)
    d.add_argument("b", type=int, nargs="?", default=None)
    _add_common(d)
    d.set_defaults(func=_cmd_diff)

    le = ts.add_parser("learn", help="learn each place's usual level per hour and propose tiers above it",
                       description="Learn, per indicator of --family (default video.events: each zone and AI "
                                   "algorithm), its usual level at each hour of a workday and of a rest day from the "
                                   "tick history (or a recording), and propose threshold profiles whose first "
                                   "paging tier starts above it (never below the catalog's).  Prints what would "
                                   "change; --save stores it as a new version (needs --reason; audited).")
    le.add_argument("--history", default=None, metavar="DIR", help="a tick history folder (default var/history)")
    le.add_argument("--recording", default=None, metavar="DIR", help="a recording from `scenic-twin simulate` "
                                                                     "(the engine runs over the feeds the families read)")
    le.add_argument("--family", action="append", default=None, help="indicator family to learn (repeatable; "
                                                                    "default video.events)")
    le.add_argument("--days", type=float, default=None, help="only the last N days of the tick history")
    le.add_argument("--z", type=float, default=2.326, help="the usual high in standard deviations above the mean "
                                                           "(default 2.326: the 99th percentile of a normal curve)")
    le.add_argument("--min-days", type=int, default=5, help="an hour seen on fewer days keeps the catalog's tiers "
                                                            "(default 5)")
    le.add_argument("--holidays", default="golden_week", help="threshold calendar whose dates are rest days "
                                                              "(default golden_week; '' for none)")
    le.add_argument("--top", type=int, default=10, help="rules to list (largest shift first)")
    le.add_argument("--out", default=None, metavar="FILE", help="write the proposed document (JSON)")
    le.add_argument("--save", action="store_true", help="store the proposal as a new threshold version")
    _add_common(le, write=True)
    le.set_defaults(func=_cmd_learn)

    r = ts.add_parser("rollback", help="save an old version's document again as a new version",
                      description="Save the document of VERSION again as a new version (history is never "
                                  "rewritten; 0 = back to the shipped defaults).  Needs --reason.")
    r.add_argument("version", type=int)
    _add_common(r, write=True)
    r.set_defaults(func=_cmd_rollback)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scenic-twin")
    register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
