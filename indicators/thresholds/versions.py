"""Saving threshold versions: a reason, validation, the stale-edit check, the audit; diff and rollback.

Every save makes a NEW version in the alert store (history is never
rewritten; a rollback saves an old document again).  A save names the
version the editor started from; if someone saved since, it is refused with
:class:`StaleVersion`, which says who saved what in between.  With an
``audit`` callable (``AccessStore.record`` or anything with its signature:
``audit(actor, action, object_type, object_id, *, before, after, detail,
outcome)``) each save is recorded with the rules' overrides before and
after, and each refusal with its reasons.  The running service reads the
latest version at its next evaluation (``Pipeline.reload_thresholds``).
"""
from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from indicators.alerts.rules import Change as DocChange, diff as doc_diff
from indicators.alerts.store import ThresholdVersion, VersionConflict

from .book import Book
from .edit import FieldProblem, Refused, validate_doc

Audit = Callable[..., Any]


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:               # no login name in a bare container
        return "unknown"


def _pad(a: Any, b: Any) -> tuple[Any, Any]:
    """Copies of ``a`` and ``b`` where a table only one side has is an empty
    table on the other, so a diff names the leaves (``override[ID].tiers.red``)
    rather than the whole table."""
    if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
        return a, b
    pa_, pb = dict(a), dict(b)
    for k in set(a) | set(b):
        x, y = a.get(k), b.get(k)
        if k not in a and isinstance(y, Mapping):
            x = {}
        if k not in b and isinstance(x, Mapping):
            y = {}
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            pa_[k], pb[k] = _pad(x, y)
    return pa_, pb


def diff(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> list[DocChange]:
    """Changed leaves from document ``a`` to ``b`` (``override[ID].tiers.red``)."""
    return doc_diff(*_pad(a or {}, b or {}))


def content(store, version: int | None) -> tuple[int, Mapping[str, Any]]:
    """(version, document) of ``version`` (None: the latest; 0: no saved
    version, i.e. the shipped baseline and the catalog only)."""
    if version == 0:
        return 0, {}
    v = store.threshold_version(version)
    if v is None:
        if version is None:
            return 0, {}
        have = [x.version for x in store.threshold_versions()]
        raise KeyError(f"no threshold version {version} "
                       f"({'versions 1-%d exist' % have[-1] if have else 'none saved yet'}; 0 = the shipped defaults)")
    return v.version, v.content


class StaleVersion(VersionConflict):
    """A save from an old version: ``changes`` were saved since, by ``saved``."""

    def __init__(self, expected: int, latest: int, saved: list[ThresholdVersion], changes: list[DocChange]):
        self.expected, self.latest, self.saved, self.changes = expected, latest, saved, changes
        who = "; ".join(f"v{v.version} by {v.author} at {v.created_at:%Y-%m-%d %H:%M}Z: {v.comment!r}" for v in saved)
        what = "; ".join(map(str, changes[:20])) + (f"; … {len(changes) - 20} more" if len(changes) > 20 else "")
        super().__init__(f"refused: thresholds were saved as v{latest} since v{expected} ({who}); what changed: "
                         f"{what or 'nothing in the document'}.  Look at the rule again (`scenic-twin thresholds "
                         f"show ID`), re-apply your change and save with --expect-version {latest}")

    def as_dict(self) -> dict[str, Any]:
        return {"expected_version": self.expected, "latest_version": self.latest,
                "saved_since": [{"version": v.version, "author": v.author, "at": v.created_at.isoformat(),
                                 "reason": v.comment} for v in self.saved],
                "changes": [change_dict(c) for c in self.changes]}


def change_dict(c: DocChange) -> dict[str, Any]:
    return {"path": c.path, "kind": c.kind, "old": c.old, "new": c.new}


def _touched(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[dict, dict]:
    """The parts of ``a`` and ``b`` that differ: changed calendars and rule overrides."""
    before: dict[str, dict] = {}
    after: dict[str, dict] = {}
    for key in ("calendars", "override"):
        ta, tb = a.get(key) or {}, b.get(key) or {}
        for name in sorted(set(ta) | set(tb)):
            if ta.get(name) != tb.get(name):
                before.setdefault(key, {})[name] = ta.get(name)
                after.setdefault(key, {})[name] = tb.get(name)
    return before, after


def save(store, book: Book, doc: Mapping[str, Any], *, author: str, reason: str, expected_version: int,
         at: datetime | None = None, audit: Audit | None = None, action: str = "thresholds.save",
         detail: Mapping[str, Any] | None = None) -> ThresholdVersion:
    """Validate ``doc`` (over the baseline) and store it as the next version.

    ``expected_version``: the version the change was made on (0: none saved).
    Raises :class:`Refused` (no reason, invalid rules) or :class:`StaleVersion`;
    both are audited as refused."""
    at = at or datetime.now(timezone.utc)
    latest, old = content(store, None)
    if not 0 <= expected_version <= latest:
        raise KeyError(f"no threshold version {expected_version} (the latest is v{latest}; 0 = none saved)")
    extra = dict(detail or {})

    def refuse(exc: Exception, why: Any):
        if audit is not None:
            audit(author, action, "thresholds", f"v{expected_version}", before=None, after=None,
                  detail={"reason": reason, "refused": why, **extra}, outcome="refused")
        raise exc

    problems: list[FieldProblem] = []
    if not author or not author.strip():
        problems.append(FieldProblem("by", "author", "who saves must be named (--by USER)"))
    if not reason or not reason.strip():
        problems.append(FieldProblem("reason", "comment", "a reason is required (--reason TEXT): it is kept with "
                                                         "the version and shown in the audit"))
    problems += validate_doc(book, doc)
    if problems:
        refuse(Refused(problems), [p.as_dict() for p in problems])
    if expected_version != latest:
        since = [v for v in store.threshold_versions() if v.version > expected_version]
        _, was = content(store, expected_version)
        err = StaleVersion(expected_version, latest, since, diff(was, old))
        refuse(err, err.as_dict())
    try:
        v = store.save_threshold_version(doc, author=author, comment=reason.strip(), at=at,
                                         expected_version=expected_version)
    except VersionConflict:                          # someone saved between our read and the write
        now_latest, now_doc = content(store, None)
        since = [x for x in store.threshold_versions() if x.version > expected_version]
        err = StaleVersion(expected_version, now_latest, since, diff(old, now_doc))
        refuse(err, err.as_dict())
    if audit is not None:
        before, after = _touched(old, doc)
        audit(author, action, "thresholds", f"v{v.version}", before={"version": latest, **before},
              after={"version": v.version, **after},
              detail={"reason": v.comment, "changes": [str(c) for c in diff(old, doc)], **extra})
    return v


def rollback(store, version: int, author: str, reason: str, *, book: Book, expected_version: int | None = None,
             at: datetime | None = None, audit: Audit | None = None) -> ThresholdVersion:
    """Save the document of ``version`` again as a NEW version (0: back to the
    shipped defaults).  ``expected_version`` defaults to the latest."""
    _, doc = content(store, version)
    latest, _ = content(store, None)
    note = f"rollback to v{version}" + (f": {reason.strip()}" if reason and reason.strip() else "")
    return save(store, book, doc, author=author, reason=note if reason and reason.strip() else "",
                expected_version=latest if expected_version is None else expected_version, at=at, audit=audit,
                action="thresholds.rollback", detail={"rollback_to": version})


@dataclass(frozen=True)
class VersionInfo:
    version: int
    author: str
    at: str
    reason: str
    changes: list[str]


def history(store) -> list[VersionInfo]:
    """Every saved version with what it changed from the one before."""
    out, prev = [], {}
    for v in store.threshold_versions():
        out.append(VersionInfo(v.version, v.author, v.created_at.isoformat(), v.comment,
                               [str(c) for c in diff(prev, v.content)]))
        prev = v.content
    return out


__all__ = ["StaleVersion", "VersionInfo", "change_dict", "content", "diff", "history", "os_user", "rollback",
           "save"]
