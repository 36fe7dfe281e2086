"""The supervisors' threshold configuration: read, change, backtest, save, diff, roll back.

The rules in force are the catalog defaults, under the shipped document
(``data/alerts/thresholds.toml``: the Golden Week calendar and profiles),
under the latest threshold version saved in the alert store.  This package
works on saved documents (the supervisors' own changes only):

* :func:`describe` - one rule as it is in force and where each part comes
  from (:mod:`.book`); :func:`search` - the rules matching text, family, zone,
  feed, level or side;
* :func:`validate_change` - a :class:`Change` to one rule applied to a saved
  document, with every problem named by field and what to do (:mod:`.edit`);
* :func:`set_rule` / :func:`save` - a new version, with a reason, refused from
  a stale version with what changed since, audited with before/after
  (:mod:`.versions`); :func:`diff`, :func:`rollback`, :func:`history`;
* :func:`backtest` - the current and the proposed document over the same
  recording or tick history, through the same :class:`~indicators.pipeline.Pipeline`
  as ``replay --alerts`` (:mod:`.backtest`).

``scenic-twin thresholds show|set|backtest|versions|diff|rollback`` is
:mod:`.cli`.  Functions taking ``book=None`` use the committed catalog
(:func:`default_book`, loaded once, about 2 s).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from .backtest import backtest, history_ticks, source_kind
from .book import Book, UnknownRule, default_book
from .edit import Change, FieldProblem, NoChange, Refused, apply_change, validate_doc
from .edit import validate_change as _validate_change
from .versions import StaleVersion, content, diff, history, os_user, rollback as _rollback, save


def describe(rule_id: str, doc: Mapping[str, Any] | None = None, *, version: int | None = None,
             book: Book | None = None) -> dict[str, Any]:
    """The rule of ``rule_id`` (an indicator id, or an unambiguous start of one)
    in force under the saved document ``doc``, each part with its source."""
    return (book or default_book()).describe(rule_id, doc, version=version)


def search(doc: Mapping[str, Any] | None = None, *, book: Book | None = None, **filters) -> list[dict[str, Any]]:
    """Rules matching ``text``, ``family``, ``zone``, ``feed``, ``level``, ``side`` (see :meth:`Book.search`)."""
    return (book or default_book()).search(doc, **filters)


def validate_change(rule_id: str, change: Change, doc: Mapping[str, Any] | None = None, *,
                    book: Book | None = None) -> tuple[dict[str, Any] | None, list[FieldProblem]]:
    """(new saved document, []) or (None, problems by field) for ``change`` to ``rule_id`` over ``doc``."""
    return _validate_change(book or default_book(), doc, rule_id, change)


def set_rule(store, rule_id: str, change: Change, *, author: str, reason: str,
             expected_version: int | None = None, at: datetime | None = None, audit=None,
             book: Book | None = None):
    """Apply ``change`` to the latest saved version and save the result as a
    new version.  ``expected_version``: the version the supervisor looked at
    (default: the latest, read now).  Raises :class:`Refused` (with the
    problems by field, or nothing changed) or :class:`StaleVersion`."""
    book = book or default_book()
    latest, doc = content(store, None)
    base_version = latest if expected_version is None else expected_version
    if base_version != latest:
        _, doc = content(store, base_version)            # KeyError when there is no such version
    try:
        rid = book.resolve(rule_id)
    except UnknownRule:
        rid = rule_id                          # validate_change reports it with suggestions
    new, problems = _validate_change(book, doc, rid, change)
    if problems:
        if audit is not None:
            audit(author, "thresholds.save", "thresholds", f"v{base_version}", before=None, after=None,
                  detail={"reason": reason, "rule": rule_id, "refused": [p.as_dict() for p in problems]},
                  outcome="refused")
        raise Refused(problems)
    if new == dict(doc or {}):
        raise NoChange([FieldProblem("change", f"override[{rid}]", "nothing to change: the rule already has "
                                                                    "these values; no version saved")])
    return save(store, book, new, author=author, reason=reason, expected_version=base_version, at=at,
                audit=audit, detail={"rule": rid})


def rollback(store, version: int, author: str, reason: str, *, book: Book | None = None,
             expected_version: int | None = None, at: datetime | None = None, audit=None):
    """Save the document of ``version`` again as a new version (history is never rewritten)."""
    return _rollback(store, version, author, reason, book=book or default_book(),
                     expected_version=expected_version, at=at, audit=audit)


__all__ = ["Book", "Change", "FieldProblem", "NoChange", "Refused", "StaleVersion", "UnknownRule", "apply_change", "backtest",
           "content", "default_book", "describe", "diff", "history", "history_ticks", "os_user", "rollback",
           "save", "search", "set_rule", "source_kind", "validate_change", "validate_doc"]
