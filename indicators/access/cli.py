"""`scenic-twin users …` and `scenic-twin audit`: accounts, wall-screen tokens and the audit trail.

A one-time password or a device token is printed once, as the LAST line of
stdout (a script can take it with ``tail -n 1``); nothing else prints, logs or
stores it in clear.  Writes from here are attributed to ``cli:<OS user>``.
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .roles import ROLE_NAMES, ROLES

STORE_HELP = ("account store: a file path or postgresql://… (default SCENIC_TWIN_STORE, else var/access.sqlite; "
              "SCENIC_TWIN_VAR replaces var/)")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:               # no login name in a bare container
        return "cli:unknown"


def _path(args) -> str | Path:
    """The account store: --store (a path or a postgresql:// URL), SCENIC_TWIN_STORE, var/access.sqlite."""
    from indicators import sqlstore

    from .store import default_path
    return sqlstore.cli_target(args.store, default_path())


def _open(args, *, create: bool = False):
    """The account store; only commands that add something may create it."""
    from indicators import sqlstore

    from .store import AccessError, AccessStore
    path = _path(args)
    if not create and not sqlstore.exists(path, schema="access"):
        raise AccessError(f"no account store at {sqlstore.describe(path)}: `scenic-twin run` creates it (or "
                          "`scenic-twin users add`); pass --store if it is elsewhere")
    return AccessStore.open(path)


def _role(code: str) -> str:
    zh, en = ROLE_NAMES[code]
    return f"{en} ({zh})"


def _user_json(u) -> dict[str, Any]:
    return {"username": u.username, "display_name": u.display_name, "role": u.role,
            "role_name": {"zh": ROLE_NAMES[u.role][0], "en": ROLE_NAMES[u.role][1]}, "disabled": u.disabled,
            "must_change_password": u.must_change_password, "created_at": u.created_at.isoformat(),
            "updated_at": u.updated_at.isoformat()}


def _guarded(fn):
    """Turn a refused account operation into its message and exit code 2."""
    def run(args) -> int:
        from .store import AccessError
        try:
            return fn(args) or 0
        except AccessError as e:
            print(f"scenic-twin: {e}", file=sys.stderr)
            return 2
    return run


# --------------------------------------------------------------------------- users
@_guarded
def _cmd_add(args):
    with _open(args, create=True) as st:
        u, password = st.add_user(args.name, args.role, by=_actor(), display_name=args.display_name)
    print(f"added {u.username}, {_role(u.role)}.  One-time password, shown only now; it must be changed at "
          "the first login:")
    print(password)


@_guarded
def _cmd_list(args):
    with _open(args) as st:
        users = st.list_users()
    if args.json:
        print(json.dumps([_user_json(u) for u in users], ensure_ascii=False, indent=2))
        return
    for u in users:
        state = "disabled" if u.disabled else ("must change password" if u.must_change_password else "active")
        print(f"{u.username:24s} {_role(u.role):28s} {state:22s} {u.display_name}")


@_guarded
def _cmd_devices(args):
    with _open(args) as st:
        devices = st.device_tokens()
    rows = [{"name": d.name, "token_id": d.token_id, "created_at": d.created_at.isoformat(),
             "last_used": d.last_used.isoformat(), "revoked": d.revoked} for d in devices]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for d in rows:
        print(f"{d['name']:24s} {'revoked' if d['revoked'] else 'live':8s} issued {d['created_at']}  "
              f"last used {d['last_used']}")


@_guarded
def _cmd_disable(args):
    with _open(args) as st:
        st.disable_user(args.name, by=_actor())
    print(f"disabled {args.name}; their sessions have ended")


@_guarded
def _cmd_enable(args):
    with _open(args) as st:
        st.enable_user(args.name, by=_actor())
    print(f"enabled {args.name}")


@_guarded
def _cmd_reset(args):
    with _open(args) as st:
        password = st.reset_password(args.name, by=_actor())
    print(f"{args.name}'s sessions have ended.  New one-time password, shown only now; it must be changed at "
          "the next login:")
    print(password)


@_guarded
def _cmd_set_role(args):
    with _open(args) as st:
        u = st.set_role(args.name, args.role, by=_actor())
    print(f"{u.username} is now {_role(u.role)}; their sessions have ended (they log in again)")


@_guarded
def _cmd_device_token(args):
    with _open(args, create=True) as st:
        token = st.issue_device_token(args.name, by=_actor())
    print(f"device token for the wall screen {args.name} (role {_role('viewer')}), shown only now; enter it "
          "under the login page's device login, it stays valid until `scenic-twin users revoke-device`:")
    print(token)


@_guarded
def _cmd_revoke_device(args):
    with _open(args) as st:
        n = st.revoke_device_token(args.name, by=_actor())
    print(f"revoked {n} token(s) of the wall screen {args.name}")


# --------------------------------------------------------------------------- audit
def _when(text: str) -> datetime:
    """An ISO time with a zone (argparse type)."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time, e.g. 2026-10-01T08:00+08:00") from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone, e.g. 2026-10-01T08:00+08:00 or …Z")
    return t


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number ≥ 1")
    return n


def _alert_trail(path: str | Path, area: str) -> list[dict[str, Any]]:
    """The alert store's audit rows in this trail's shape (they have no outcome, client or before/after)."""
    from indicators.alerts.store import open_store
    with open_store(path, area=area) as st:
        rows = st.audit(limit=st.counts()["audit"])   # audit(limit) keeps the OLDEST rows: read them all
    out = []
    for r in rows:
        try:
            detail = json.loads(r["details"]) if r.get("details") else None
        except (TypeError, ValueError):
            detail = r.get("details")
        out.append({"trail": "alerts", "key": r["key"], "at": r["at"], "actor": r["actor"], "action": r["action"],
                    "object_type": r["object_type"], "object_id": r["object_id"], "outcome": "ok", "client": None,
                    "before": None, "after": None, "detail": detail})
    return out


@_guarded
def _cmd_audit(args):
    from indicators import sqlstore

    from .store import iso
    access_path = _path(args)
    area = sqlstore.cli_area(args.area)
    if args.alerts_store:
        alerts_path = sqlstore.cli_target(args.alerts_store, Path())
    else:           # on PostgreSQL one database holds both; SQLite files sit side by side
        alerts_path = access_path if sqlstore.is_postgres(access_path) else access_path.parent / "alerts.sqlite"
    rows: list[dict[str, Any]] = []
    if sqlstore.exists(access_path, schema="access"):
        with _open(args) as st:
            if args.prune:
                n = st.prune_audit(timedelta(days=args.retention_days), by=_actor())
                print(f"pruned {n} account audit rows older than {args.retention_days} days "
                      "(the alert store's trail is not pruned here)", file=sys.stderr)
            rows += [{"trail": "access", **r} for r in st.audit_rows(since=args.since, actor=args.actor,
                                                                     action=args.action, limit=args.limit)]
    else:
        print(f"(no account store at {sqlstore.describe(access_path)})", file=sys.stderr)
    if sqlstore.exists(alerts_path, schema=f"area_{area}"):
        since = iso(args.since) if args.since else None
        rows += [r for r in _alert_trail(alerts_path, area)
                 if (since is None or r["at"] >= since) and args.actor in (None, r["actor"])
                 and args.action in (None, r["action"])]
    else:
        print(f"(no alert store at {sqlstore.describe(alerts_path)})", file=sys.stderr)
    rows.sort(key=lambda r: (r["at"], r["trail"], r["key"]))
    rows = rows[-args.limit:]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    for r in rows:
        extra = {k: r[k] for k in ("before", "after", "detail") if r[k] is not None}
        print(f"{r['at']}  {r['trail']:6s} {r['actor']:22s} {r['action']:24s} {r['object_type']}:{r['object_id']}"
              f"  {r['outcome']}" + (f"  {json.dumps(extra, ensure_ascii=False, default=str)}" if extra else ""))


# --------------------------------------------------------------------------- registration
def register(sub) -> None:
    """Add ``users`` and ``audit`` to the ``scenic-twin`` subcommands."""
    users = sub.add_parser("users", help="accounts and wall-screen device tokens",
                           description="Accounts (roles: " + ", ".join(f"{r} = {_role(r)}" for r in ROLES)
                                       + ") and device tokens of unattended wall screens.  One-time passwords "
                                         "and tokens are printed once, on the last line.")
    us = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")

    def action(name: str, fn, help_: str, description: str, *positional: tuple[str, dict]):
        p = us.add_parser(name, help=help_, description=description)
        for arg, kw in positional:
            p.add_argument(arg, **kw)
        p.add_argument("--store", default=None, help=STORE_HELP)
        p.set_defaults(func=fn)
        return p

    name = ("name", {"help": "user name, e.g. zhang.wei"})
    a = action("add", _cmd_add, "add a user; prints a one-time password",
               "Add a user.  A one-time password is generated and printed once; the user must change it at the "
               "first login.", name)
    a.add_argument("--role", required=True, choices=ROLES, help="viewer, patrol, operator, supervisor or admin")
    a.add_argument("--display-name", default="", help="the name shown in the console, e.g. 张伟")
    action("list", _cmd_list, "list users (never their passwords)",
           "List users: name, role, state, display name.").add_argument("--json", action="store_true")
    action("devices", _cmd_devices, "list wall-screen device tokens",
           "List device tokens: name, live or revoked, issued, last used.").add_argument("--json",
                                                                                         action="store_true")
    action("disable", _cmd_disable, "disable a user and end their sessions",
           "Disable a user: they cannot log in and their open sessions end at once.", name)
    action("enable", _cmd_enable, "enable a disabled user", "Enable a disabled user again; they log in with their current password (sessions ended by the "
           "disable stay ended).", name)
    action("reset-password", _cmd_reset, "give a user a new one-time password",
           "Give a user a new one-time password (printed once) and end their sessions.", name)
    action("set-role", _cmd_set_role, "change a user's role",
           "Change a user's role; their sessions end so no open page keeps the old role.", name,
           ("role", {"choices": ROLES, "help": "viewer, patrol, operator, supervisor or admin"}))
    device = ("name", {"help": "wall screen name, e.g. wall-1"})
    action("device-token", _cmd_device_token, "issue a viewer token for an unattended wall screen",
           "Issue a device token (role viewer) for an unattended wall screen, valid until revoked; printed "
           "once.", device)
    action("revoke-device", _cmd_revoke_device, "revoke a wall screen's token",
           "Revoke a wall screen's device token; the screen is logged out at its next request.", device)

    au = sub.add_parser("audit", help="the audit trail: account changes, logins, console and alert actions",
                        description="Print the audit trail of the account store (account changes, logins, "
                                    "refusals, console actions) and of the alert store (alerts, cases, plans, "
                                    "thresholds), merged and oldest first; each row says its trail.  A store "
                                    "file that does not exist is skipped.")
    au.add_argument("--json", action="store_true", help="print JSON")
    au.add_argument("--since", type=_when, default=None, help="only rows from this ISO time on (with zone)")
    au.add_argument("--actor", default=None, help="only this actor, e.g. zhang.wei or cli:root")
    au.add_argument("--action", default=None, help="only this action, e.g. login or user.disable")
    au.add_argument("--limit", type=_positive, default=10_000, help="the newest N rows (default 10000)")
    au.add_argument("--prune", action="store_true",
                    help="first delete account audit rows older than the retention")
    au.add_argument("--retention-days", type=_positive, default=183,
                    help="retention for --prune (default and minimum 183: six months, Cybersecurity Law art. 21)")
    au.add_argument("--store", default=None, help=STORE_HELP)
    au.add_argument("--alerts-store", default=None, help="alert store (default: alerts.sqlite beside the account "
                                                         "store, i.e. var/alerts.sqlite; on PostgreSQL the "
                                                         "account store's database)")
    au.add_argument("--area", default=None, help="on PostgreSQL: whose alert trail (default SCENIC_TWIN_AREA or "
                                                 "canton-tower)")
    au.set_defaults(func=_cmd_audit)
