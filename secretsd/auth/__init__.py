"""Identities: API tokens (and, later, logins that issue them)."""
