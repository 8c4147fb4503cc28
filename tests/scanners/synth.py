"""Synthetic credentials, built at run time so no real-looking secret sits in the test files."""

from __future__ import annotations

import random
import string
import zlib

from secretsd.scanners.checksums import base62

ALNUM = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = ALNUM, seed: int | None = None) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n))


def github_token(prefix: str = "ghp", seed: int = 1, *, zero_checksum: bool = False) -> str:
    """A token with a valid CRC32/base62 checksum (optionally one whose checksum starts with 0)."""
    rng = random.Random(seed)
    while True:
        body = "".join(rng.choice(ALNUM) for _ in range(30))
        check = base62(zlib.crc32(body.encode()))
        if not zero_checksum or check.startswith("0"):
            return f"{prefix}_{body}{check}"


def bad_checksum(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


def aws_key_id(seed: int = 2) -> str:
    return "AKIA" + rand(16, string.ascii_uppercase + "234567", seed)


def password(seed: int = 3) -> str:
    return rand(6, ALNUM, seed) + "!" + rand(5, ALNUM, seed + 1)
