"""Values typed on the command line are public: every user of the machine can read a
process's arguments (``ps``, ``/proc/<pid>/cmdline``) and shells keep them in their
history. ``secretsd run --env`` and ``secretsd put`` warn when one looks like a secret.

The check is deliberately small: a credential-like name (``DB_PASSWORD``,
``api_key``, ``GITHUB_TOKEN``...) or a URL carrying a password. The warning
names the variable or key, never the value.
"""

from __future__ import annotations

import re

__all__ = ["looks_secret"]

_SECRET_NAME = re.compile(
    r"(?i)(pass(word|wd|phrase)?|pwd|secret|token|api_?key|private_?key|credential|auth)"
)
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:\s]*:[^/@\s]+@", re.IGNORECASE)


def looks_secret(name: str, value: str) -> bool:
    """True when ``value``, given for ``name``, is probably a credential."""
    return bool(value) and bool(_SECRET_NAME.search(name) or _URL_PASSWORD.match(value))
