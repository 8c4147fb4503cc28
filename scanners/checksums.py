"""Format validators named by rules (``checksum = "..."`` in the rules file).

A format that carries a checksum lets the scanner drop look-alikes for free.
The GitHub/npm checksum is the CRC32 of the token body written in base62 and
zero-padded to six characters: a validator that forgets the padding drops the
~21% of real tokens whose checksum starts with ``0`` (a bug seen in a peer).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Callable

__all__ = ["VALIDATORS", "base62", "basic_auth_pair", "github_checksum", "validate"]

_B62_UPPER_FIRST = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_LOWER_FIRST = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def base62(number: int, width: int = 6, alphabet: str = _B62_UPPER_FIRST) -> str:
    """``number`` in base62, zero-padded to ``width`` characters."""
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(alphabet[rest])
    return "".join(reversed(digits)).rjust(width, alphabet[0])


def github_checksum(body: str) -> str:
    """The six-character checksum GitHub appends to a 30-character token body."""
    return base62(zlib.crc32(body.encode()))


def _crc_token(secret: str) -> bool:
    """``<prefix>_<30 random><6 checksum>`` (GitHub ghp_/gho_/ghu_/ghs_/ghr_, npm_)."""
    prefix, sep, rest = secret.partition("_")
    if not sep or len(rest) != 36:
        return False
    body, check = rest[:30], rest[30:]
    for signed in (body, f"{prefix}_{body}"):
        crc = zlib.crc32(signed.encode())
        for alphabet in (_B62_UPPER_FIRST, _B62_LOWER_FIRST):
            if base62(crc, 6, alphabet) == check:
                return True
    return False


def b64url_bytes(text: str) -> bytes | None:
    """``text`` as base64url with its padding restored (JWT parts, macaroons), or None."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        return None


def b64url_json(part: str) -> dict[str, object] | None:
    """A base64url part that holds a JSON object (a JWT's header or payload), or None."""
    raw = b64url_bytes(part)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _jwt(secret: str) -> bool:
    """Header and payload are base64url JSON and the header names an algorithm."""
    parts = secret.split(".")
    if len(parts) != 3:
        return False
    header = b64url_json(parts[0])
    return header is not None and "alg" in header and b64url_json(parts[1]) is not None


def _pypi(secret: str) -> bool:
    """A PyPI token is a macaroon whose base64 body names pypi.org."""
    raw = b64url_bytes(secret.removeprefix("pypi-")[:60])
    return raw is not None and (b"pypi.org" in raw or b"test.pypi.org" in raw)


def _base64_key(secret: str) -> bool:
    """Base64 that decodes to at least 32 bytes (Azure storage keys and the like)."""
    try:
        raw = base64.b64decode(secret, validate=True)
    except (ValueError, binascii.Error):
        return False
    return len(raw) >= 32


def _aes_key(secret: str) -> bool:
    """Base64 (standard or URL-safe alphabet) of exactly 16, 24 or 32 bytes: the length of
    an AES key, which is what Consul's gossip key and a Fernet key are."""
    padded = secret + "=" * (-len(secret) % 4)
    try:
        if "-" in secret or "_" in secret:
            raw = base64.urlsafe_b64decode(padded)
        else:
            raw = base64.b64decode(padded, validate=True)
    except (ValueError, binascii.Error):
        return False
    return len(raw) in (16, 24, 32)


def basic_auth_pair(secret: str) -> tuple[str, str] | None:
    """The ``(user, password)`` an ``Authorization: Basic`` value carries as base64 of
    ``user:password``, or None when it carries no such pair."""
    try:
        raw = base64.b64decode(secret + "=" * (-len(secret) % 4), validate=True)
    except (ValueError, binascii.Error):
        return None
    text = raw.decode("utf-8", "replace")
    user, sep, password = text.partition(":")
    if sep and user and len(password) >= 3 and text.isprintable():
        return user, password
    return None


def _basic_auth(secret: str) -> bool:
    """``Authorization: Basic`` carries base64 of ``user:password``."""
    return basic_auth_pair(secret) is not None


_PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")


def _pem_base64(secret: str) -> bool:
    """Base64 of an unencrypted PEM private key (kubeconfig ``client-key-data``, a key kept in
    one CI variable): it decodes to the armour and a body, without ``ENCRYPTED`` in it."""
    try:
        raw = base64.b64decode(secret + "=" * (-len(secret) % 4), validate=True)
    except (ValueError, binascii.Error):
        return False
    text = raw.decode("ascii", "replace")
    return (
        _PEM_PRIVATE.match(text) is not None and "ENCRYPTED" not in text[:200] and len(text) >= 120
    )


#: An OpenSSH private key blob starts with this; the smallest complete one (Ed25519, no
#: cipher, no comment) decodes to about 240 bytes, so a blob under 160 was cut short.
_OPENSSH_MAGIC = b"openssh-key-v1\0"
_OPENSSH_MIN_BYTES = 160


def key_body_cut_short(body: str) -> bool:
    """A private key's base64 body that visibly stops early: DER whose outer SEQUENCE
    declares twice the bytes the body holds or more (``MIIEvQIBADANBgkqhki...`` and one
    line), or an OpenSSH blob far smaller than any whole key. Such a body is the first line
    of a key in a test of a key detector or a shortened doc sample: it opens nothing. A body
    in neither format (random test bytes, PGP packets) is not judged here."""
    try:
        raw = base64.b64decode(body[: len(body) - len(body) % 4])
    except (ValueError, binascii.Error):
        return False
    if raw.startswith(_OPENSSH_MAGIC):
        return len(raw) < _OPENSSH_MIN_BYTES
    if len(raw) < 4 or raw[0] != 0x30:
        return False
    if raw[1] == 0x82:  # long form, two length bytes: every RSA and most PKCS#8 keys
        declared = 4 + int.from_bytes(raw[2:4], "big")
    elif raw[1] == 0x81:
        declared = 3 + raw[2]
    elif raw[1] < 0x80:  # short form: small EC and Ed25519 keys
        declared = 2 + raw[1]
    else:
        return False
    # Cut short means most of it is missing (one line of a 1,200-byte key): a generated or
    # hand-edited body a little off its declared length is still judged as a key.
    return len(raw) < declared // 2


def _mnemonic_words(secret: str) -> bool:
    """A BIP-39 recovery phrase has 12, 15, 18, 21 or 24 words."""
    return len(secret.split()) in (12, 15, 18, 21, 24)


_NKEY_PREFIX = {"O": 14 << 3, "A": 0, "U": 20 << 3, "N": 13 << 3, "C": 2 << 3, "X": 23 << 3}


def _nkey_seed(secret: str) -> bool:
    """A NATS NKEY seed: base32 of two prefix bytes, 32 key bytes and a CRC-16 (XMODEM,
    little-endian) of what precedes it."""
    try:
        raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
    except (ValueError, binascii.Error):
        return False
    if len(raw) != 36 or raw[0] >> 3 != 18:  # 18 << 3 = 'S' (seed)
        return False
    body, check = raw[:34], raw[34:]
    return binascii.crc_hqx(body, 0) == int.from_bytes(check, "little")


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "nkey-crc16": _nkey_seed,
    "github-crc32": _crc_token,
    "jwt": _jwt,
    "pypi-macaroon": _pypi,
    "base64-key": _base64_key,
    "aes-key": _aes_key,
    "basic-auth": _basic_auth,
    "pem-base64": _pem_base64,
    "mnemonic-words": _mnemonic_words,
}


def validate(name: str, secret: str) -> bool:
    """Run the named validator; an unknown name is a rules-file error caught at load time."""
    return VALIDATORS[name](secret)
