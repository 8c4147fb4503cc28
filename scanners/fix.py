"""``secretsd scan --fix``: move found values into secretsd and reference them instead.

For each finding in the working tree the fix proposes a secret path
``scanned/<repo>/<file-stem>`` and a key (from the assignment's name), stores
the value there through the HTTP API, and rewrites the literal:

* in program source, with the language's environment lookup
  (``os.environ["DB_PASSWORD"]``, ``process.env.DB_PASSWORD``,
  ``os.Getenv("DB_PASSWORD")``...), to be filled by ``secretsd run``;
* in shell and YAML, with ``${DB_PASSWORD}``;
* elsewhere (.env, JSON, TOML, INI, XML, docs), with the reference itself,
  ``secretsd://scanned/<repo>/<file-stem>#db_password``.

``--dry-run`` shows the diff (secrets redacted) and changes nothing; without
``--yes`` the user confirms first. Planning and rewriting are pure functions,
so they are tested without a server.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secretsd.scanners.model import Finding, redact

from secretsd.errors import InvalidInput, Unavailable

if TYPE_CHECKING:
    from secretsd.client.config import ClientSettings

__all__ = ["Edit", "Plan", "apply_plan", "env_name", "plan_fixes", "render_diff", "run_fix"]

_KEY_BEFORE = re.compile(
    r"""([A-Za-z_][\w.-]*)["'\]]{0,2}\s*(?:=|:=|:|=>|,|\()\s*(?:[\w.$]{0,30}\(\s*)?[rbuf@]?["'`]?$"""
)
_SEGMENT = re.compile(r"[^A-Za-z0-9._-]+")
_QUOTES = "\"'`"

#: How each kind of file reads a value from the environment (None: use the reference).
ENV_LOOKUP: dict[str, str] = {
    ".py": 'os.environ["{name}"]',
    ".js": "process.env.{name}",
    ".mjs": "process.env.{name}",
    ".cjs": "process.env.{name}",
    ".ts": "process.env.{name}",
    ".tsx": "process.env.{name}",
    ".jsx": "process.env.{name}",
    ".go": 'os.Getenv("{name}")',
    ".java": 'System.getenv("{name}")',
    ".kt": 'System.getenv("{name}")',
    ".scala": 'sys.env("{name}")',
    ".rb": 'ENV["{name}"]',
    ".php": "getenv('{name}')",
    ".cs": 'Environment.GetEnvironmentVariable("{name}")',
    ".rs": 'std::env::var("{name}").unwrap()',
}
SHELL_STYLE = frozenset({".sh", ".bash", ".zsh", ".yaml", ".yml"})


@dataclass(frozen=True)
class Edit:
    """One literal to replace and where its value goes."""

    path: str
    line: int
    secret: str = field(repr=False)
    replacement: str
    secret_path: str
    key: str
    env: str | None  # the environment variable the code now reads, if any


@dataclass
class Plan:
    edits: list[Edit] = field(default_factory=list)
    skipped: list[tuple[Finding, str]] = field(default_factory=list)
    new_text: dict[str, str] = field(default_factory=dict)
    old_text: dict[str, str] = field(default_factory=dict)

    def stores(self) -> dict[str, dict[str, str]]:
        """secret path -> {key: value} to write."""
        out: dict[str, dict[str, str]] = {}
        for edit in self.edits:
            out.setdefault(edit.secret_path, {})[edit.key] = edit.secret
        return out


def _segment(text: str) -> str:
    cleaned = _SEGMENT.sub("-", text).strip("-.") or "value"
    return cleaned if cleaned not in (".", "..") else "value"


def env_name(key: str) -> str:
    """``dbPassword`` / ``db.password`` -> ``DB_PASSWORD``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key)
    name = re.sub(r"[^A-Za-z0-9]+", "_", spaced).strip("_").upper() or "SECRET"
    return name if not name[0].isdigit() else f"_{name}"


def _key_for(finding: Finding, line: str, column: int) -> str:
    match = _KEY_BEFORE.search(line[: max(0, column - 1)])
    name = match.group(1).rsplit(".", 1)[-1] if match else finding.rule.replace("-", "_")
    return env_name(name).lower()


def _replacement(
    suffix: str, quoted: bool, env: str, reference: str
) -> tuple[str, bool, str | None]:
    """(text, replaces the quotes too, env var used) for a literal in a file of ``suffix``."""
    lookup = ENV_LOOKUP.get(suffix)
    if lookup is not None and quoted:
        return lookup.format(name=env), True, env
    if suffix in SHELL_STYLE or (lookup is None and suffix == "" and not quoted):
        return "${" + env + "}", False, env
    return reference, False, None


def plan_fixes(root: Path, findings: Sequence[Finding], repo_name: str | None = None) -> Plan:
    """Work out every edit; nothing is written."""
    plan = Plan()
    assigned: dict[tuple[str, str], str] = {}
    repo = _segment(repo_name or root.resolve().name)
    by_file: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.commit is not None:
            plan.skipped.append((finding, "found in history, not in the working tree"))
        elif "\n" in finding.secret:
            plan.skipped.append((finding, "multi-line value (move it by hand)"))
        else:
            by_file.setdefault(finding.path, []).append(finding)
    for rel, items in sorted(by_file.items()):
        path = root / rel
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            for finding in items:
                plan.skipped.append((finding, f"cannot read the file ({error})"))
            continue
        lines = text.splitlines(keepends=True)
        suffix = path.suffix.lower() if path.suffix else ""
        stem = _segment(path.stem.lstrip(".") or path.name)
        changed = False
        for finding in sorted(items, key=lambda f: (f.line, -f.column), reverse=True):
            if not 1 <= finding.line <= len(lines):
                plan.skipped.append((finding, "line no longer exists"))
                continue
            line = lines[finding.line - 1]
            start = line.find(finding.secret)
            if start < 0:
                plan.skipped.append((finding, "value not found on its line any more"))
                continue
            key = _key_for(finding, line, start + 1)
            secret_path = f"scanned/{repo}/{stem}"
            key = _unique_key(assigned, secret_path, key, finding.secret)
            reference = f"secretsd://{secret_path}#{key}"
            end = start + len(finding.secret)
            quoted = (
                start > 0
                and end < len(line)
                and line[start - 1] in _QUOTES
                and line[end] == line[start - 1]
            )
            new, with_quotes, env = _replacement(suffix, quoted, env_name(key), reference)
            if with_quotes:
                start, end = start - 1, end + 1
            lines[finding.line - 1] = line[:start] + new + line[end:]
            changed = True
            plan.edits.append(Edit(rel, finding.line, finding.secret, new, secret_path, key, env))
        if changed:
            new_text = "".join(lines)
            if (
                suffix == ".py"
                and "os.environ[" in new_text
                and not re.search(r"^\s*import os\b|^\s*import .*\bos\b", new_text, re.MULTILINE)
            ):
                new_text = _add_python_import(new_text)
            plan.old_text[rel] = text
            plan.new_text[rel] = new_text
    plan.edits.sort(key=lambda e: (e.path, e.line))
    return plan


def _unique_key(assigned: dict[tuple[str, str], str], path: str, key: str, value: str) -> str:
    """``key``, or ``key_2``, ``key_3``... when the same path and key already hold another value."""
    candidate, number = key, 1
    while assigned.get((path, candidate), value) != value:
        number += 1
        candidate = f"{key}_{number}"
    assigned[(path, candidate)] = value
    return candidate


def _add_python_import(text: str) -> str:
    """Insert ``import os`` after the module docstring and ``__future__`` imports."""
    import ast

    lines = text.splitlines(keepends=True)
    at = 1 if lines and lines[0].startswith("#!") else 0
    try:
        body = ast.parse(text).body
    except SyntaxError:
        body = []
    for node in body:
        is_doc = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if not (is_doc or is_future):
            break
        at = node.end_lineno or at
    return "".join([*lines[:at], "import os\n", *lines[at:]])


def render_diff(plan: Plan, show_secrets: bool = False) -> str:
    """A unified diff of every rewritten file (secrets redacted unless asked)."""
    chunks: list[str] = []
    for rel in sorted(plan.new_text):
        old = plan.old_text[rel]
        if not show_secrets:
            for edit in plan.edits:
                if edit.path == rel:
                    old = old.replace(edit.secret, redact(edit.secret))
        chunks.extend(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                plan.new_text[rel].splitlines(keepends=True),
                f"a/{rel}",
                f"b/{rel}",
            )
        )
    return "".join(chunks)


Store = Callable[[str, Mapping[str, str]], None]


def apply_plan(root: Path, plan: Plan, store: Store) -> None:
    """Store every value first, then rewrite the files (atomically, one by one).

    Values go first so an interrupted run never leaves code pointing at a
    value that was not stored.
    """
    for secret_path, data in sorted(plan.stores().items()):
        store(secret_path, data)
    for rel, text in plan.new_text.items():
        target = root / rel
        tmp = target.with_name(f".{target.name}.secretsd-fix{os.getpid()}")
        tmp.write_text(text, "utf-8")
        os.replace(tmp, target)


def sdk_store(
    addr: str | None = None, token: str | None = None, *, settings: ClientSettings | None = None
) -> Store:
    """Write values through the SDK (configured like ``Client``): merged into the secret
    atomically (PATCH with check-and-set), or a new secret created only if none exists
    (``cas=0``)."""
    from secretsd.client import Client, Retry
    from secretsd.errors import CasMismatch, NotFound

    def store(path: str, data: Mapping[str, str]) -> None:
        try:
            with Client(
                addr, token, settings=settings, auto_renew=False, retry=Retry(attempts=3)
            ) as client:
                for _ in range(3):
                    try:
                        client.patch(path, dict(data))
                        return
                    except NotFound:
                        pass
                    try:
                        client.put(path, dict(data), cas=0)
                        return
                    except CasMismatch:
                        continue  # created meanwhile: merge into it
                raise CasMismatch(f"{path!r} kept changing while --fix wrote it; run it again")
        except Unavailable as error:
            raise Unavailable(f"{error.message}; nothing was rewritten") from None

    return store


def run_fix(
    root: Path,
    findings: Sequence[Finding],
    *,
    dry_run: bool,
    assume_yes: bool,
    store: Store | None = None,
    confirm: Callable[[str], bool] | None = None,
    out: Any = None,
) -> int:
    """The ``--fix`` flow; returns the exit code (0 all fixed or dry run, 1 some left)."""
    stream = out or sys.stdout
    plan = plan_fixes(root, findings)
    if not plan.edits:
        print("Nothing can be fixed automatically.", file=stream)
        _print_skipped(plan, stream)
        return 1 if plan.skipped else 0
    print(render_diff(plan), file=stream, end="")
    print("", file=stream)
    for secret_path, data in sorted(plan.stores().items()):
        print(f"store: secretsd://{secret_path} keys {', '.join(sorted(data))}", file=stream)
    envs = sorted({(e.env, f"secretsd://{e.secret_path}#{e.key}") for e in plan.edits if e.env})
    if envs:
        print("run the code with these variables, e.g. via `secretsd run`:", file=stream)
        for name, reference in envs:
            print(f"  {name}={reference}", file=stream)
    _print_skipped(plan, stream)
    if dry_run:
        print("Dry run: nothing was stored or changed.", file=stream)
        return 0
    if not assume_yes:
        if confirm is None:
            if not sys.stdin.isatty():
                raise InvalidInput("--fix needs a confirmation: run it in a terminal or add --yes")
            import typer

            def confirm(question: str) -> bool:
                return bool(typer.confirm(question, default=False))

        if not confirm(
            f"Store {len(plan.edits)} value(s) in secretsd and rewrite "
            f"{len(plan.new_text)} file(s)?"
        ):
            print("Nothing changed.", file=stream)
            return 1
    if store is None:
        store = _store_from_env()
    apply_plan(root, plan, store)
    print(
        f"Fixed {len(plan.edits)} finding(s) in {len(plan.new_text)} file(s). "
        "Rotate any value that was ever committed.",
        file=stream,
    )
    return 1 if plan.skipped else 0


def _store_from_env() -> Store:
    from secretsd.scanners.managed import settings_from_env

    return sdk_store(settings=settings_from_env(purpose="--fix (without --dry-run)"))


def _print_skipped(plan: Plan, stream: Any) -> None:
    for finding, why in plan.skipped:
        print(f"not fixed: {finding.path}:{finding.line} ({finding.rule}): {why}", file=stream)
