"""Accounts, roles, sessions and the audit trail (see :mod:`.store`, :mod:`.roles`)."""
