"""Turning secrets into file contents: json, yaml, dotenv, raw bytes and Jinja2 templates.

Rendering is pure: it reads secrets through a ``lookup(path, version)``
callable and returns bytes plus the paths it used, so the sidecar knows
which outputs to re-render when a path changes. Templates run in Jinja2's
``SandboxedEnvironment`` (no attribute tricks reach Python internals) with
``StrictUndefined`` (a typo fails loudly instead of rendering an empty
password); ``secret("secretsd://path#key")`` returns one value,
``secret("secretsd://path")`` the whole map.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from secretsd.agent.config import Output
from secretsd.backends.base import SecretVersion
from secretsd.errors import ConfigError, InvalidInput, NotFound, SecretsdError
from secretsd.ref import Reference, parse_reference

__all__ = ["Lookup", "Rendered", "render"]

Lookup = Callable[[str, "int | None"], SecretVersion]


@dataclass(frozen=True, slots=True)
class Rendered:
    content: bytes
    #: path -> version of every secret read (watched paths: the unversioned ones).
    used: dict[str, int]
    watched: frozenset[str]

    def __repr__(self) -> str:
        return f"Rendered(bytes={len(self.content)}, used={self.used})"


def _value(secret: SecretVersion, ref: Reference, output: str) -> SecretVersion | str:
    if ref.key is None:
        return secret
    if ref.key not in secret.data:
        raise NotFound(
            f"{output}: secret {ref.path!r} (version {secret.version}) has no key {ref.key!r}; "
            f"keys: {', '.join(sorted(secret.data)) or 'none'}"
        )
    return secret.data[ref.key]


def _read(lookup: Lookup, ref: Reference, output: str) -> SecretVersion:
    try:
        return lookup(ref.path, ref.version)
    except NotFound:
        version = f" version {ref.version}" if ref.version is not None else ""
        raise NotFound(f"{output}: secret {ref.path!r}{version} does not exist") from None
    except SecretsdError as error:
        raise type(error)(f"{output}: reading {ref.path!r}: {error.message}") from None


def _format(secret: SecretVersion, ref: Reference, fmt: str, output: str) -> bytes:
    if ref.key is not None and fmt == "raw":
        if ref.key not in secret.data:
            _value(secret, ref, output)
        return secret.value_bytes(ref.key)
    data = dict(secret.data)
    if ref.key is not None:
        value = _value(secret, ref, output)
        assert isinstance(value, str)
        data = {ref.key: value}
    if fmt == "json":
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
    if fmt == "yaml":
        return yaml.safe_dump(data, default_flow_style=False, sort_keys=True).encode("utf-8")
    from secretsd.cli.dotenv import format_dotenv

    try:
        return format_dotenv(dict(sorted(data.items()))).encode("utf-8")
    except InvalidInput as error:
        raise ConfigError(f"{output}: {error.message}") from None


def render(output: Output, lookup: Lookup) -> Rendered:
    """One output's bytes; errors name the file and the secret, key or template line."""
    used: dict[str, int] = {}
    watched: set[str] = set()

    def read(ref: Reference) -> SecretVersion:
        secret = _read(lookup, ref, output.name)
        used[ref.path] = secret.version
        if ref.version is None:
            watched.add(ref.path)
        return secret

    if output.ref is not None:
        content = _format(read(output.ref), output.ref, output.format, output.name)
        return Rendered(content, used, frozenset(watched))
    assert output.template is not None
    return Rendered(_render_template(output, read), used, frozenset(watched))


def _render_template(output: Output, read: Callable[[Reference], SecretVersion]) -> bytes:
    from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    def secret(text: str) -> object:
        ref = parse_reference(text)
        value = _value(read(ref), ref, output.name)
        return dict(value.data) if isinstance(value, SecretVersion) else value

    environment = SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )
    environment.globals["secret"] = secret
    assert output.template is not None
    try:
        template = environment.from_string(output.template)
        return template.render().encode("utf-8")
    except TemplateSyntaxError as error:
        raise ConfigError(f"{output.name}: template line {error.lineno}: {error.message}") from None
    except TemplateError as error:
        # Jinja's messages name variables and attributes, never rendered values.
        raise ConfigError(f"{output.name}: template: {error.message}") from None
