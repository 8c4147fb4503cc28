"""Ansible Vault envelopes: parse and decrypt formats 1.1 and 1.2 (AES256) with ``cryptography``.

The format, as ansible-core writes it::

    $ANSIBLE_VAULT;1.2;AES256;<label>      (1.1 has no label)
    hex(salt_hex "\\n" hmac_hex "\\n" ciphertext_hex), wrapped at 80 columns

Keys come from PBKDF2-HMAC-SHA256(password, salt, 10000 iterations, 80
bytes): 32 for AES-256-CTR, 32 for HMAC-SHA256, 16 for the counter's
initial value. The HMAC over the ciphertext is verified (constant time,
``cryptography``'s ``HMAC.verify``) before a single byte is decrypted, so a
modified ciphertext or a wrong password never yields garbage. The label of a
1.2 header is *not* authenticated: it only says which password to try first.

Errors (:class:`VaultError`) carry a stable ``code`` and never a value.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

__all__ = [
    "HEADER",
    "Envelope",
    "VaultError",
    "VaultSecret",
    "decrypt",
    "is_vault",
    "parse_envelope",
]

HEADER = b"$ANSIBLE_VAULT"
ITERATIONS = 10_000
_KEY = 32
_IV = 16


class VaultError(Exception):
    """A vault value that cannot be used; ``code`` is one of:

    ``vault_format_error`` (not a well-formed envelope: truncated, bad hex,
    unknown cipher), ``vault_no_matching_secret`` (no password was supplied for
    its label and none of the others fits), ``vault_decrypt_failed`` (HMAC
    mismatch with every supplied password: a wrong password or a modified
    ciphertext).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class VaultSecret:
    """A vault password and the vault-id label it was given for."""

    label: str
    password: bytes = field(repr=False)
    origin: str = ""  # where it came from (a file name, "prompt"), for messages


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed vault text: header facts and the three binary parts."""

    version: str
    cipher: str
    label: str | None
    salt: bytes
    mac: bytes
    ciphertext: bytes


def is_vault(data: bytes | str) -> bool:
    """True when ``data`` starts with the vault header (leading whitespace allowed)."""
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    return raw.lstrip()[: len(HEADER)] == HEADER


def _unhex(part: bytes, what: str, code: str = "vault_format_error") -> bytes:
    try:
        return binascii.unhexlify(part)
    except (binascii.Error, ValueError):
        raise VaultError(
            code,
            f"the {what} is not valid hex (truncated or edited vault text?); "
            "restore it from version control or re-create it with ansible-vault",
        ) from None


def parse_envelope(data: bytes | str) -> Envelope:
    """Split a vault text into header facts, salt, HMAC and ciphertext."""
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    lines = raw.strip().splitlines()
    if not lines or not lines[0].startswith(HEADER):
        raise VaultError("vault_format_error", "no $ANSIBLE_VAULT header")
    header = lines[0].strip().split(b";")
    if len(header) < 3:
        raise VaultError("vault_format_error", "the $ANSIBLE_VAULT header has too few fields")
    version = header[1].decode("ascii", "replace")
    cipher = header[2].decode("ascii", "replace").strip()
    label: str | None = None
    if version == "1.2":
        if len(header) < 4 or not header[3].strip():
            raise VaultError("vault_format_error", "a 1.2 vault header needs a vault-id label")
        label = header[3].strip().decode("utf-8", "replace")
    elif version != "1.1":
        raise VaultError(
            "vault_format_error", f"unsupported vault format {version!r} (1.1 and 1.2 are)"
        )
    if cipher != "AES256":
        raise VaultError("vault_format_error", f"unsupported vault cipher {cipher!r} (AES256 is)")
    body = b"".join(line.strip() for line in lines[1:])
    if not body:
        raise VaultError("vault_format_error", "the vault text has a header but no data")
    parts = _unhex(body, "vault data").split(b"\n")
    if len(parts) != 3:
        raise VaultError(
            "vault_format_error", "the vault data does not have salt, HMAC and ciphertext"
        )
    if any(len(part) % 2 for part in parts):
        raise VaultError("vault_format_error", "the vault data is truncated")
    # The envelope is well formed and complete; a character that is not hex inside it is
    # a modified (unauthentic) ciphertext, the same verdict a flipped bit gets from the HMAC.
    salt = _unhex(parts[0], "salt", "vault_decrypt_failed")
    mac = _unhex(parts[1], "HMAC", "vault_decrypt_failed")
    ciphertext = _unhex(parts[2], "ciphertext", "vault_decrypt_failed")
    if not salt or len(mac) != 32 or len(ciphertext) % 16:
        raise VaultError("vault_format_error", "the vault data is truncated")
    return Envelope(version, cipher, label, salt, mac, ciphertext)


def _try(envelope: Envelope, password: bytes) -> bytes | None:
    """The plaintext if ``password`` verifies the HMAC, else None."""
    derived = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=2 * _KEY + _IV, salt=envelope.salt, iterations=ITERATIONS
    ).derive(password)
    aes_key, mac_key, iv = derived[:_KEY], derived[_KEY : 2 * _KEY], derived[2 * _KEY :]
    mac = HMAC(mac_key, hashes.SHA256())
    mac.update(envelope.ciphertext)
    try:
        mac.verify(envelope.mac)  # constant time; nothing is decrypted before this passes
    except InvalidSignature:
        return None
    decryptor = Cipher(algorithms.AES(aes_key), modes.CTR(iv)).decryptor()
    padded = decryptor.update(envelope.ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise VaultError("vault_format_error", "the decrypted data has invalid padding") from None


def ordered_secrets(label: str | None, secrets: Sequence[VaultSecret]) -> list[VaultSecret]:
    """The order ansible-playbook tries passwords in: the header's label first, then the rest."""
    if label is None:
        return list(secrets)
    first = [s for s in secrets if s.label == label]
    return first + [s for s in secrets if s.label != label]


def decrypt(data: bytes | str, secrets: Sequence[VaultSecret]) -> tuple[bytes, VaultSecret]:
    """Decrypt one vault text; return the plaintext and the secret that opened it."""
    envelope = parse_envelope(data)
    tried: set[bytes] = set()
    for secret in ordered_secrets(envelope.label, secrets):
        if secret.password in tried:
            continue
        tried.add(secret.password)
        plaintext = _try(envelope, secret.password)
        if plaintext is not None:
            return plaintext, secret
    labels = sorted({s.label for s in secrets})
    if envelope.label is not None and envelope.label not in labels:
        raise VaultError(
            "vault_no_matching_secret",
            f"encrypted for vault-id {envelope.label!r}, whose password was not given "
            f"(given: {', '.join(labels) or 'none'}); add --vault-id {envelope.label}@FILE",
        )
    if not secrets:
        raise VaultError(
            "vault_no_matching_secret",
            "no vault password was given; use --vault-id LABEL@FILE or --vault-password-file",
        )
    raise VaultError(
        "vault_decrypt_failed",
        f"HMAC verification failed with every given password ({', '.join(labels)}): "
        "a wrong password, or the ciphertext was modified",
    )
