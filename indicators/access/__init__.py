"""Accounts, roles, sessions and the audit trail.

:mod:`.roles` (pure: the five roles and what each grants), :mod:`.passwords`
(pure: password rules, one-time passwords), :mod:`.store` (the SQLite
adapter: users, sessions, device tokens, login throttling, audit) and
:mod:`.cli` (``scenic-twin users …`` and ``scenic-twin audit``).
"""
