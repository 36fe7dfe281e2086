"""Password rules and one-time passwords.  No I/O, no clock.

A generated password is what an administrator reads off a terminal and
dictates or hands over: 18 characters from an alphabet without look-alikes
(no 0/O/o, 1/l/I/i), about 104 bits from :mod:`secrets`, so it does not need
to be changed for strength — it must be changed because someone else saw it.

Hashing is argon2id (argon2-cffi's ``PasswordHasher`` defaults, RFC 9106's
second recommended profile); the store owns the hasher so a deployment can
raise its cost and have old hashes upgraded at the next login.
"""
from __future__ import annotations

import secrets

MIN_LENGTH = 12
"""Shortest password a user may choose (a generated one is longer)."""

GENERATED_LENGTH = 18
UNAMBIGUOUS = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""Letters and digits that cannot be misread for one another on a screen or a note."""


def generate() -> str:
    """A fresh one-time password (shown once to whoever creates or resets an account)."""
    return "".join(secrets.choice(UNAMBIGUOUS) for _ in range(GENERATED_LENGTH))


def problem(new: str, old: str | None = None) -> str | None:
    """Why ``new`` may not become a password (None when it may).

    Only length and reuse are checked: length is what makes a password
    strong, and composition rules push users towards predictable patterns
    (NIST SP 800-63B, 5.1.1.2)."""
    if len(new) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters"
    if old is not None and new == old:
        return "the new password must differ from the current one"
    return None
