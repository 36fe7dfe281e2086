"""The five roles and what each may do.  Pure data.

A protected thing (a page, a route, a callback) declares the ONE role it
needs; a user may use it when their role grants that role:

    viewer      the wall display (unattended screens log in with a device token)
    patrol      patrol officers on their phones
    operator    alerts and dispatch (the control-room console)
    supervisor  thresholds and plans; may do what an operator does
    admin       accounts; sees the wall, does not dispatch
"""
from __future__ import annotations

ROLES = ("viewer", "patrol", "operator", "supervisor", "admin")
GRANTS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"viewer"}),
    "patrol": frozenset({"viewer", "patrol"}),
    "operator": frozenset({"viewer", "operator"}),
    "supervisor": frozenset({"viewer", "operator", "supervisor"}),
    "admin": frozenset({"viewer", "admin"}),
}
ROLE_NAMES = {"viewer": ("值守大屏", "Wall viewer"), "patrol": ("巡查员", "Patrol officer"),
              "operator": ("调度员", "Operator"), "supervisor": ("值班主管", "Supervisor"),
              "admin": ("系统管理员", "Administrator")}


def allowed(user_role: str, needed: str) -> bool:
    """Whether a user with ``user_role`` may use something that needs ``needed``."""
    return needed in GRANTS.get(user_role, frozenset())
