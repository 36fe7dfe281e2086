"""`scenic-twin users …` and `scenic-twin audit`: accounts and the audit trail from the command line."""
from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import datetime
from pathlib import Path

from .roles import ROLES


def _store(args):
    from .store import AccessStore
    return AccessStore.open(args.store)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli:unknown"


def _run(fn):
    def wrapped(args) -> int:
        from .store import AccessError
        try:
            return fn(args) or 0
        except AccessError as e:
            print(f"scenic-twin: {e}", file=sys.stderr)
            return 2
    return wrapped


@_run
def _add(args):
    _, pw = _store(args).add_user(args.name, args.role, by=_actor(), display_name=args.display_name or "")
    print(f"user {args.name} ({args.role}) added.  One-time password (shown once, must be changed at first "
          f"login):\n{pw}")


@_run
def _list(args):
    users = _store(args).list_users()
    if args.json:
        print(json.dumps([{"username": u.username, "display_name": u.display_name, "role": u.role,
                           "disabled": u.disabled, "must_change_password": u.must_change_password,
                           "created_at": u.created_at.isoformat()} for u in users], ensure_ascii=False, indent=2))
    else:
        for u in users:
            print(f"{u.username:24s} {u.role:10s} {'disabled' if u.disabled else 'active':8s} {u.display_name}")


@_run
def _disable(args):
    _store(args).disable_user(args.name, by=_actor())
    print(f"user {args.name} disabled; their sessions ended")


@_run
def _enable(args):
    _store(args).enable_user(args.name, by=_actor())
    print(f"user {args.name} enabled")


@_run
def _reset(args):
    pw = _store(args).reset_password(args.name, by=_actor())
    print(f"new one-time password for {args.name} (shown once; their sessions ended):\n{pw}")


@_run
def _set_role(args):
    _store(args).set_role(args.name, args.role, by=_actor())
    print(f"user {args.name} is now {args.role}")


@_run
def _device(args):
    tok = _store(args).issue_device_token(args.name, by=_actor())
    print(f"device token for wall screen {args.name} (shown once; enter it in the login page's device field):\n{tok}")


@_run
def _revoke_device(args):
    n = _store(args).revoke_device_token(args.name, by=_actor())
    print(f"revoked {n} token(s) of device {args.name}")


@_run
def _audit(args):
    from datetime import timedelta

    from .store import default_path
    rows = []
    access_path = Path(args.store) if args.store else default_path()
    if access_path.exists():
        st = _store(args)
        if args.prune:
            n = st.prune_audit(timedelta(days=args.retention_days))
            print(f"pruned {n} audit rows older than {args.retention_days} days", file=sys.stderr)
        since = datetime.fromisoformat(args.since) if args.since else None
        for r in st.audit_rows(since=since, actor=args.actor, action=args.action, limit=args.limit):
            rows.append(r | {"trail": "access"})
    alerts_path = Path(args.alerts_store) if args.alerts_store else access_path.parent / "alerts.sqlite"
    if alerts_path.exists():
        from indicators.alerts.store import open_store
        with open_store(alerts_path) as st:
            for r in st.audit(limit=args.limit):
                r = dict(r) | {"trail": "alerts"}
                if args.actor and r.get("actor") != args.actor:
                    continue
                if args.since and str(r.get("occurred_at", "")) < args.since:
                    continue
                rows.append(r)
    rows.sort(key=lambda r: str(r.get("occurred_at", "")))
    rows = rows[-args.limit:]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
    else:
        for r in rows:
            print(f"{r.get('occurred_at')}  {r.get('actor', ''):20s} {r.get('action', ''):24s} "
                  f"{r.get('object_type', '')}:{r.get('object_id', '')}  {r.get('outcome', '')}")


def register(sub) -> None:
    """Add `users` and `audit` to the `scenic-twin` sub-commands."""
    users = sub.add_parser("users", help="accounts: add, list, disable, enable, reset-password, set-role, "
                                         "device-token, revoke-device",
                           description="Accounts and wall-screen device tokens (state in var/access.sqlite).")
    us = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")

    def p(name, fn, help_, *args):
        q = us.add_parser(name, help=help_, description=help_)
        for a in args:
            q.add_argument(a)
        q.add_argument("--store", default=None, help="account store (default var/access.sqlite)")
        q.set_defaults(func=fn)
        return q
    a = p("add", _add, "add a user; prints a one-time password", "name")
    a.add_argument("--role", required=True, choices=ROLES)
    a.add_argument("--display-name", default="")
    p("list", _list, "list users (no secrets)").add_argument("--json", action="store_true")
    p("disable", _disable, "disable a user and end their sessions", "name")
    p("enable", _enable, "enable a user again", "name")
    p("reset-password", _reset, "set a new one-time password and end the user's sessions", "name")
    r = p("set-role", _set_role, "change a user's role", "name")
    r.add_argument("role", choices=ROLES)
    p("device-token", _device, "issue a viewer token for an unattended wall screen", "name")
    p("revoke-device", _revoke_device, "revoke a wall screen's tokens", "name")

    au = sub.add_parser("audit", help="the audit trail: every write and security event",
                        description="Print the audit trail (accounts, logins, refusals, console actions, and the "
                                    "alert store's alert/case/plan trail), oldest first.")
    au.add_argument("--json", action="store_true")
    au.add_argument("--since", default=None, help="ISO time")
    au.add_argument("--actor", default=None)
    au.add_argument("--action", default=None)
    au.add_argument("--limit", type=int, default=10_000)
    au.add_argument("--store", default=None, help="account store (default var/access.sqlite)")
    au.add_argument("--alerts-store", default=None, help="alert store (default alerts.sqlite beside it)")
    au.add_argument("--prune", action="store_true", help="delete rows older than the retention first")
    au.add_argument("--retention-days", type=int, default=183)
    au.set_defaults(func=_audit)
