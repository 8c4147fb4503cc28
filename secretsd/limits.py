"""The numeric limits of API v1, as plain numbers.

Apart from ``bounds.py`` (which builds the pydantic types on them) so that
``import secretsd`` (the reference parser needs ``MAX_VERSION``) does not load
pydantic: that import is a third of ``secretsd scan``'s start-up, which the
pre-commit hook and every CI run pay.
"""

from __future__ import annotations

__all__ = ["MAX_COUNT", "MAX_CURSOR", "MAX_SECRET_KEYS", "MAX_VERSION", "MAX_WAIT_SECONDS"]

#: Versions, uses and counts are stored in 32-bit columns (audit ``version``, ...).
MAX_VERSION = 2**31 - 1
MAX_COUNT = 2**31 - 1
#: Audit sequence numbers are 64-bit.
MAX_CURSOR = 2**63 - 1
#: Keys per secret. OpenBao refuses a request body with more than 1000 JSON strings by
#: default (``max_request_json_strings``), so a KV write fails at about 500 keys with its
#: own message; secretsd stops well before that with its own.
MAX_SECRET_KEYS = 400
#: The longest long-poll a request may ask for (the server caps it further by max_wait).
MAX_WAIT_SECONDS = 3600.0
