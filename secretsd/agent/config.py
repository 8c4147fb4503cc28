"""The agent's settings: which files to render, how, and what to do when they change.

Two sources say the same things (DESIGN.md, "Kubernetes: the agent and its
annotations"): the pod annotations, read from the downward-API file
(``key="value"`` lines, values quoted the way Kubernetes writes them, Go's
``%q``), and a YAML file::

    role: web                     # Kubernetes login role (else SDK credentials)
    addr: https://secretsd:8700   # else SECRETSD_ADDR
    dir: /secretsd
    on_change: signal:HUP:nginx   # or exec:<command>
    init_only: false
    owner: "101:101"              # uid[:gid] of every file (default: the agent's)
    files:
      db.json:      {secret: "secretsd://apps/web/db"}
      db-password:  {secret: "secretsd://apps/web/db#password", mode: "0440"}
      app.env:      {secret: "secretsd://apps/web/db", format: dotenv}
      app.conf:
        template: |
          [db]
          password = {{ secret("secretsd://apps/web/db#password") }}

Both may be given; a file named by both is an error, other settings from the
annotations win. Every problem is reported with where it is and how to fix
it, and nothing is rendered from a configuration that has one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from secretsd.errors import ConfigError, InvalidReference
from secretsd.ref import Reference, parse_reference

__all__ = [
    "ANNOTATION_PREFIX",
    "DEFAULT_ANNOTATIONS",
    "DEFAULT_DIR",
    "AgentConfig",
    "OnChange",
    "Output",
    "from_annotations",
    "from_yaml",
    "load_config",
    "merge",
    "parse_annotations_file",
]

ANNOTATION_PREFIX = "secretsd.io/"
DEFAULT_ANNOTATIONS = Path("/etc/podinfo/annotations")
DEFAULT_DIR = Path("/secretsd")
FORMATS = ("json", "yaml", "dotenv", "raw")
_FILE_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")
_SIGNAL = re.compile(r"(?:SIG)?([A-Z0-9]{2,8})")
_PROCESS = re.compile(r"[^\s/:]{1,64}")
_OWNER = re.compile(r"(\d{1,10})(?::(\d{1,10}))?")


@dataclass(frozen=True, slots=True)
class Output:
    """One file: a reference (whole secret or one key) or a template, its format and mode."""

    name: str
    ref: Reference | None = None
    template: str | None = None
    format: str = "json"
    mode: int = 0o400
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True, slots=True)
class OnChange:
    """``signal:<NAME>[:<process>]`` or ``exec:<command>``."""

    kind: str  # "signal" | "exec"
    signal: str = ""
    process: str = ""
    command: str = ""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    outputs: tuple[Output, ...] = ()
    role: str | None = None
    on_change: OnChange | None = None
    init_only: bool = False
    dir: Path | None = None
    addr: str | None = None


# -- value parsers -----------------------------------------------------------------


def _file_name(name: str, where: str) -> str:
    if not _FILE_NAME.fullmatch(name) or name in (".", ".."):
        raise ConfigError(
            f"{where}: {name[:80]!r} is not a valid file name (letters, digits, '.', '_', '-'; "
            "no '/')"
        )
    return name


def _mode(raw: object, where: str) -> int:
    text = str(raw)
    if isinstance(raw, int) and not isinstance(raw, bool):
        # YAML reads 0440 as the number 288 and 440 as 440: take both as meant.
        text = text if re.fullmatch(r"[0-7]{3}", text) else f"{raw:o}"
    if not re.fullmatch(r"0?[0-7]{3}", text):
        raise ConfigError(f'{where}: mode {text[:20]!r} is not an octal file mode such as "0440"')
    mode = int(text, 8)
    if mode & 0o022 or mode & 0o001:
        raise ConfigError(
            f"{where}: mode {text} lets others or the group write, or the world read/execute; "
            "use 0400, 0440 or 0600"
        )
    return mode


def _owner(raw: object, where: str) -> tuple[int | None, int | None]:
    match = _OWNER.fullmatch(str(raw))
    if not match:
        raise ConfigError(f"{where}: owner {str(raw)[:40]!r} is not 'uid' or 'uid:gid' (numbers)")
    return int(match.group(1)), int(match.group(2)) if match.group(2) else None


def parse_on_change(raw: str, where: str) -> OnChange:
    kind, _, rest = raw.strip().partition(":")
    if kind == "exec" and rest.strip():
        return OnChange("exec", command=rest.strip())
    if kind == "signal":
        name, _, process = rest.partition(":")
        match = _SIGNAL.fullmatch(name.strip().upper())
        if match and (not process or _PROCESS.fullmatch(process)):
            import signal as signals

            signal_name = "SIG" + match.group(1)
            if isinstance(getattr(signals, signal_name, None), int):
                return OnChange("signal", signal=signal_name, process=process)
    raise ConfigError(
        f"{where}: {raw[:80]!r} is not an on-change action; write signal:HUP, "
        "signal:HUP:<process-name> or exec:<command>"
    )


def _reference(raw: object, where: str) -> Reference:
    try:
        return parse_reference(str(raw))
    except InvalidReference as error:
        raise ConfigError(f"{where}: {error.message}") from None


def _boolean(raw: object, where: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise ConfigError(f'{where}: expected "true" or "false", got {str(raw)[:20]!r}')


def _output(
    name: str,
    *,
    secret: object = None,
    template: object = None,
    fmt: object = None,
    mode: object = None,
    owner: object = None,
    where: str,
) -> Output:
    _file_name(name, where)
    if (secret is None) == (template is None):
        raise ConfigError(
            f"{where}: file {name!r} needs exactly one of a secret reference or a template"
        )
    ref = _reference(secret, where) if secret is not None else None
    if template is not None and not isinstance(template, str):
        raise ConfigError(f"{where}: the template of {name!r} must be text")
    default = "raw" if ref is not None and ref.key is not None else "json"
    chosen = str(fmt).strip().lower() if fmt is not None else default
    if chosen not in FORMATS:
        raise ConfigError(
            f"{where}: format {str(fmt)[:20]!r} of {name!r} is not one of {', '.join(FORMATS)}"
        )
    if template is not None and fmt is not None:
        raise ConfigError(f"{where}: {name!r} is a template; a format does not apply to it")
    if chosen == "raw" and ref is not None and ref.key is None:
        raise ConfigError(
            f"{where}: raw output of {name!r} needs one key: write {ref}#<key>, or pick "
            "json, yaml or dotenv for the whole secret"
        )
    uid, gid = _owner(owner, where) if owner is not None else (None, None)
    return Output(
        name=name,
        ref=ref,
        template=template,
        format=chosen if template is None else "template",
        mode=_mode(mode, where) if mode is not None else 0o400,
        uid=uid,
        gid=gid,
    )


# -- annotations ---------------------------------------------------------------------

_GO_ESCAPE = re.compile(
    r'\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|[abfnrtv\\\'"])'
)
_SIMPLE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, "'": 39, '"': 34}


def _go_unquote(text: str, where: str) -> str:
    """Undo Go's ``strconv.Quote`` (what the kubelet writes for each annotation value)."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ConfigError(f"{where}: the value is not a double-quoted string")
    body = text[1:-1]
    out = bytearray()
    position = 0
    for match in _GO_ESCAPE.finditer(body):
        chunk = body[position : match.start()]
        if "\\" in chunk or '"' in chunk:
            raise ConfigError(f"{where}: bad escape or stray quote in the value")
        out += chunk.encode("utf-8")
        code = match.group(1)
        if code[0] in "xuU" and len(code) > 1:
            number = int(code[1:], 16)
            if code[0] == "x":
                out.append(number)
            else:
                out += chr(number).encode("utf-8", "surrogatepass")
        elif code[0].isdigit():
            out.append(int(code, 8) & 0xFF)
        else:
            out.append(_SIMPLE[code])
        position = match.end()
    rest = body[position:]
    if "\\" in rest or '"' in rest:
        raise ConfigError(f"{where}: bad escape or stray quote in the value")
    out += rest.encode("utf-8")
    return out.decode("utf-8", "replace")


def parse_annotations_file(path: Path) -> dict[str, str]:
    """The downward-API annotations file as a dict (every annotation, ours or not)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"cannot read the annotations file {str(path)!r}: {error.strerror}; mount the "
            "downward API volume (metadata.annotations) there or pass --annotations"
        ) from None
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        where = f"{path}:{number}"
        if not sep or not key:
            raise ConfigError(f'{where}: expected key="value"')
        found[key] = _go_unquote(value, where)
    return found


_PER_FILE = ("secret", "format", "template", "mode", "owner")


def from_annotations(annotations: Mapping[str, str], where: str = "annotations") -> AgentConfig:
    """The agent's config from ``secretsd.io/*`` annotations; other annotations are ignored."""
    files: dict[str, dict[str, str]] = {}
    top: dict[str, str] = {}
    for key, value in annotations.items():
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        name = key[len(ANNOTATION_PREFIX) :]
        spot = f"{where}: {key}"
        for kind in _PER_FILE:
            if name.startswith(kind + "-"):
                file_name = _file_name(name[len(kind) + 1 :], spot)
                files.setdefault(file_name, {})[kind] = value
                break
        else:
            if name not in ("inject", "role", "on-change", "init-only", "status"):
                raise ConfigError(
                    f"{spot}: unknown annotation; secretsd.io/ takes inject, role, on-change, "
                    "init-only, secret-<file>, format-<file>, template-<file>, mode-<file>"
                )
            top[name] = value
    outputs = []
    for file_name, parts in sorted(files.items()):
        spot = f"{where}: file {file_name!r}"
        outputs.append(
            _output(
                file_name,
                secret=parts.get("secret"),
                template=parts.get("template"),
                fmt=parts.get("format"),
                mode=parts.get("mode"),
                owner=parts.get("owner"),
                where=spot,
            )
        )
    return AgentConfig(
        outputs=tuple(outputs),
        role=top.get("role") or None,
        on_change=(
            parse_on_change(top["on-change"], f"{where}: secretsd.io/on-change")
            if top.get("on-change")
            else None
        ),
        init_only=_boolean(top.get("init-only", "false"), f"{where}: secretsd.io/init-only"),
    )


# -- YAML ----------------------------------------------------------------------------

_TOP_KEYS = {"role", "dir", "on_change", "init_only", "owner", "files", "addr"}
_FILE_KEYS = {"secret", "template", "format", "mode", "owner"}


def from_yaml(path: Path) -> AgentConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read the agent config {str(path)!r}: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML") from None
    where = str(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with a 'files' key")
    unknown = sorted(set(map(str, data)) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_TOP_KEYS))}"
        )
    files = data.get("files") or {}
    if not isinstance(files, dict):
        raise ConfigError(f"{where}: 'files' must map file names to settings")
    owner = data.get("owner")
    outputs = []
    for name, spec in files.items():
        spot = f"{where}: files.{name}"
        if isinstance(spec, str):
            spec = {"secret": spec}
        if not isinstance(spec, dict):
            raise ConfigError(f"{spot}: expected a reference or a mapping (secret, template...)")
        extra = sorted(set(map(str, spec)) - _FILE_KEYS)
        if extra:
            raise ConfigError(
                f"{spot}: unknown key(s) {', '.join(extra)}; known: {', '.join(sorted(_FILE_KEYS))}"
            )
        outputs.append(
            _output(
                str(name),
                secret=spec.get("secret"),
                template=spec.get("template"),
                fmt=spec.get("format"),
                mode=spec.get("mode"),
                owner=spec.get("owner", owner),
                where=spot,
            )
        )
    on_change = data.get("on_change")
    return AgentConfig(
        outputs=tuple(outputs),
        role=str(data["role"]) if data.get("role") else None,
        on_change=parse_on_change(str(on_change), f"{where}: on_change") if on_change else None,
        init_only=_boolean(data.get("init_only", False), f"{where}: init_only"),
        dir=Path(str(data["dir"])) if data.get("dir") else None,
        addr=str(data["addr"]) if data.get("addr") else None,
    )


def merge(base: AgentConfig, over: AgentConfig) -> AgentConfig:
    """``over`` (annotations) on top of ``base`` (YAML); one file named twice is an error."""
    names = {output.name for output in base.outputs}
    twice = sorted(names & {output.name for output in over.outputs})
    if twice:
        raise ConfigError(
            f"file(s) {', '.join(twice)} are configured both in the config file and in the "
            "annotations; keep one"
        )
    return AgentConfig(
        outputs=base.outputs + over.outputs,
        role=over.role or base.role,
        on_change=over.on_change or base.on_change,
        init_only=over.init_only or base.init_only,
        dir=over.dir or base.dir,
        addr=over.addr or base.addr,
    )


def load_config(
    annotations: Path | None, config: Path | None, *, default_annotations: Path | None = None
) -> AgentConfig:
    """Read the YAML file and/or the annotations file; at least one file must be rendered."""
    result = AgentConfig()
    if config is not None:
        result = from_yaml(config)
    path = annotations
    if path is None and default_annotations is not None and default_annotations.exists():
        path = default_annotations
    if path is not None:
        result = merge(result, from_annotations(parse_annotations_file(path), str(path)))
    if not result.outputs:
        raise ConfigError(
            "nothing to render: give secretsd.io/secret-<file> or template-<file> annotations "
            f"(--annotations, default {DEFAULT_ANNOTATIONS}) or a --config file with 'files'"
        )
    return result
