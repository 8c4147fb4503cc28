"""Vault passwords, found the way ansible-playbook finds them.

Sources, in the order ansible-playbook collects them (the order only matters
for 1.1 files, which carry no label and are tried with every password):

1. the tree's ``ansible.cfg`` (or ``$ANSIBLE_CONFIG``): ``vault_identity_list``
   (``label@source, ...``) and ``vault_password_file``; environment variables
   ``ANSIBLE_VAULT_IDENTITY_LIST`` / ``ANSIBLE_VAULT_PASSWORD_FILE`` override
   the file's values, as in Ansible;
2. ``--vault-id label@source`` flags, then ``--vault-password-file FILE``
   (label ``default``).

A source is ``prompt`` (asked on the terminal without echo), an executable
script (its stdout is the password; a script whose name ends in ``-client``
gets ``--vault-id <label>``, Ansible's client-script protocol), or a file
(its content with surrounding whitespace stripped). Relative paths in
``ansible.cfg`` are relative to the file's folder; on the command line, to
the working directory.
"""

from __future__ import annotations

import configparser
import getpass
import os
import subprocess
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from secretsd.migrations.vault_crypto import VaultSecret

from secretsd.errors import ConfigError

__all__ = ["VaultIdSpec", "load_secrets", "needs_trust", "parse_vault_id", "specs_for_tree"]

DEFAULT_LABEL = "default"
_SCRIPT_TIMEOUT = 60


@dataclass(frozen=True, slots=True)
class VaultIdSpec:
    """``label@source`` before it is read; saved in plans (it holds no password)."""

    label: str
    source: str  # "prompt", or an absolute path

    def __str__(self) -> str:
        return f"{self.label}@{self.source}"


def parse_vault_id(text: str, base: Path) -> VaultIdSpec:
    """``label@source`` or a bare source (label ``default``); relative paths against ``base``."""
    text = text.strip()
    if not text:
        raise ConfigError("an empty --vault-id; write LABEL@FILE, LABEL@prompt or FILE")
    label, at, source = text.partition("@")
    if not at:
        label, source = DEFAULT_LABEL, text
    if not label or not source:
        raise ConfigError(f"--vault-id {text!r}: write LABEL@FILE, LABEL@prompt or FILE")
    if source == "prompt":
        return VaultIdSpec(label, "prompt")
    return VaultIdSpec(label, str((base / os.path.expanduser(source)).absolute()))


def _config_file(root: Path, env: Mapping[str, str]) -> Path | None:
    named = env.get("ANSIBLE_CONFIG")
    if named:
        return Path(named)
    candidate = root / "ansible.cfg"
    return candidate if candidate.is_file() else None


def specs_for_tree(
    root: Path,
    vault_ids: Sequence[str] = (),
    password_files: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> list[VaultIdSpec]:
    """Every vault-id for ``root``: its ansible.cfg and environment, then the flags."""
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    specs: list[VaultIdSpec] = []
    identity_list = env.get("ANSIBLE_VAULT_IDENTITY_LIST")
    password_file = env.get("ANSIBLE_VAULT_PASSWORD_FILE")
    cfg_base = cwd
    cfg = _config_file(root, env)
    if cfg is not None:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(cfg, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as error:
            raise ConfigError(
                f"{cfg}: not a valid ansible.cfg ({type(error).__name__}); fix the file"
            ) from None
        cfg_base = cfg.parent
        if identity_list is None and parser.has_option("defaults", "vault_identity_list"):
            identity_list = parser.get("defaults", "vault_identity_list")
            id_base = cfg_base
        else:
            id_base = cwd
        if password_file is None and parser.has_option("defaults", "vault_password_file"):
            password_file = parser.get("defaults", "vault_password_file")
            pw_base = cfg_base
        else:
            pw_base = cwd
    else:
        id_base = pw_base = cwd
    for item in (identity_list or "").split(","):
        if item.strip():
            specs.append(parse_vault_id(item, id_base))
    if password_file and not password_files:
        specs.append(parse_vault_id(f"{DEFAULT_LABEL}@{password_file}", pw_base))
    specs.extend(parse_vault_id(item, cwd) for item in vault_ids)
    specs.extend(parse_vault_id(f"{DEFAULT_LABEL}@{item}", cwd) for item in password_files)
    return specs


def _run_script(spec: VaultIdSpec, path: Path) -> bytes:
    name = path.stem if path.suffix else path.name
    args = [str(path)]
    if name.endswith("-client"):
        args += ["--vault-id", spec.label]
    try:
        done = subprocess.run(
            args,
            capture_output=True,
            timeout=_SCRIPT_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ConfigError(
            f"vault password script {path} for vault-id {spec.label!r} could not run "
            f"({type(error).__name__}); check that it is executable and finishes"
        ) from None
    if done.returncode != 0:
        raise ConfigError(
            f"vault password script {path} for vault-id {spec.label!r} exited with "
            f"{done.returncode}; run it by hand to see why"
        )
    return done.stdout.strip()


def _read_source(spec: VaultIdSpec, ask: Callable[[str], str]) -> tuple[bytes, str]:
    if spec.source == "prompt":
        if not sys.stdin.isatty():
            raise ConfigError(
                f"vault-id {spec.label!r} asks for a password on the terminal, but stdin is not "
                "one; use LABEL@FILE or a password script instead"
            )
        return ask(f"Vault password ({spec.label}): ").encode("utf-8"), "prompt"
    path = Path(spec.source)
    if not path.is_file():
        raise ConfigError(
            f"vault password file {path} (vault-id {spec.label!r}) does not exist; check the path"
        )
    if os.access(path, os.X_OK):
        return _run_script(spec, path), path.name
    try:
        return path.read_bytes().strip(), path.name
    except OSError as error:
        raise ConfigError(
            f"cannot read vault password file {path} ({error.strerror}); check its permissions"
        ) from None


def needs_trust(spec: VaultIdSpec) -> bool:
    """True for a source that runs a program or asks the user (a script, ``prompt``)."""
    if spec.source == "prompt":
        return True
    path = Path(spec.source)
    return path.is_file() and os.access(path, os.X_OK)


def load_secrets(
    specs: Sequence[VaultIdSpec],
    ask: Callable[[str], str] = getpass.getpass,
    *,
    trusted: Collection[str] | None = None,
) -> list[VaultSecret]:
    """Read every password (running scripts, prompting once per prompted label).

    ``trusted``: when given (specs taken from a saved plan file), a script is run
    or a prompt shown only for specs in it: a plan file alone must never be
    able to make ``apply`` execute a program.
    """
    secrets: list[VaultSecret] = []
    for spec in specs:
        if trusted is not None and needs_trust(spec) and str(spec) not in trusted:
            raise ConfigError(
                f"the plan names the vault-id {spec}, which runs a program or asks for a "
                f"password; pass --vault-id {spec} to apply to allow it"
            )
        password, origin = _read_source(spec, ask)
        if not password:
            raise ConfigError(f"the vault password for vault-id {spec.label!r} ({origin}) is empty")
        secrets.append(VaultSecret(spec.label, password, origin))
    return secrets
