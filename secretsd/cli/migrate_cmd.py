"""``secretsd migrate {plan|apply|verify} {ansible|k8s} ...``: move existing secrets into secretsd.

    secretsd migrate plan ansible ./infra --vault-id prod@~/.vault-prod --out plan.json
    secretsd migrate plan ansible ./infra k8s ./manifests   # one plan: duplicates across both
    secretsd migrate apply plan.json                  # exactly the reviewed plan, or nothing
    secretsd migrate apply k8s ./manifests --prefix team-a
    secretsd migrate verify k8s --context prod -n shop  # exit 1 on drift

Tables on a terminal, JSON otherwise (or with ``--json``); a progress bar on
stderr while applying on a terminal. The work is in ``secretsd.migrations``.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from secretsd.cli.client_cmds import AddrOption, JsonOption, open_client
from secretsd.cli.output import is_tty, print_json, table
from secretsd.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from secretsd.migrations.mapping import Mapper
    from secretsd.migrations.plan import Plan

__all__ = ["app"]

app = typer.Typer(
    help="Move Ansible-vault values and Kubernetes Secrets into secretsd: plan, apply, verify.",
    no_args_is_help=True,
)

SourcesArg = Annotated[
    list[str],
    typer.Argument(
        help="ansible ROOT and/or k8s PATH (k8s alone with --context NAME); both together make "
        "one plan, so a value found in both is a duplicate. apply: or a saved plan file.",
        show_default=False,
        metavar="SOURCE",
    ),
]
VaultIdOpt = Annotated[
    list[str] | None,
    typer.Option("--vault-id", help="LABEL@FILE, LABEL@prompt or LABEL@SCRIPT (repeatable)."),
]
PasswordFileOpt = Annotated[
    list[str] | None,
    typer.Option("--vault-password-file", help="A vault password file or script (repeatable)."),
]
ContextOpt = Annotated[
    str | None, typer.Option("--context", help="Read a live cluster: this kubeconfig context.")
]
NamespaceOpt = Annotated[
    list[str] | None, typer.Option("--namespace", "-n", help="Only these namespaces (repeatable).")
]
SelectorOpt = Annotated[
    str | None, typer.Option("--selector", "-l", help="Live cluster: a label selector.")
]
IncludeSaOpt = Annotated[
    bool,
    typer.Option(
        "--include-service-account-tokens",
        help="Live cluster: also import service-account tokens (skipped by default).",
    ),
]
IncludeHelmOpt = Annotated[
    bool,
    typer.Option(
        "--include-helm-releases",
        help="Live cluster: also import Helm release records (skipped by default).",
    ),
]
PrefixOpt = Annotated[
    str | None, typer.Option("--prefix", help="Put every target below this path.")
]
RulesOpt = Annotated[
    Path | None, typer.Option("--rules", help="A rules file mapping sources to targets.")
]
NoPlainOpt = Annotated[
    bool,
    typer.Option(
        "--no-plaintext", help="Ansible: do not offer plaintext secret-looking variables."
    ),
]
RewriteOpt = Annotated[
    Path | None,
    typer.Option(
        "--rewrite",
        help="Write rewritten vars files / manifests (referencing secretsd) into this folder.",
    ),
]

KINDS = ("ansible", "k8s")


@dataclass(frozen=True)
class SourceOptions:
    """The source arguments and options ``plan``, ``apply`` and ``verify`` share.

    Declared once (:func:`source_command` adds them to each command) and turned
    into a described source and a mapper once, so the three commands cannot
    drift apart in what they accept or how they read it.
    """

    sources: list[str]
    vault_id: list[str] | None = None
    vault_password_file: list[str] | None = None
    context: str | None = None
    namespace: list[str] | None = None
    selector: str | None = None
    include_service_account_tokens: bool = False
    include_helm_releases: bool = False
    no_plaintext: bool = False
    prefix: str | None = None
    rules: Path | None = None

    def plan_file(self) -> Path | None:
        """``apply PLAN``: the saved plan named instead of sources (else None)."""
        if not self.sources or self.sources[0] in KINDS:
            return None
        if len(self.sources) > 1:
            raise ConfigError("apply PLAN takes no second argument")
        return Path(self.sources[0])

    def _pairs(self) -> list[tuple[str, Path | None]]:
        pairs: list[tuple[str, Path | None]] = []
        tokens = list(self.sources)
        while tokens:
            kind = tokens.pop(0)
            if kind not in KINDS:
                raise ConfigError(
                    f"unknown source kind {kind!r}: use ansible ROOT and/or k8s PATH "
                    "(or k8s --context NAME)"
                )
            path = Path(tokens.pop(0)) if tokens and tokens[0] not in KINDS else None
            if any(seen == kind for seen, _ in pairs):
                raise ConfigError(
                    f"{kind} is given twice; one plan reads one Ansible tree and one "
                    "Kubernetes source (plan the others separately)"
                )
            pairs.append((kind, path))
        if not pairs:
            raise ConfigError("give a source: ansible ROOT and/or k8s PATH (or k8s --context NAME)")
        return pairs

    def source(self) -> dict[str, Any]:
        """The described source (several: combined into one plan), checked for stray options."""
        from secretsd.migrations.sources import combined_source

        pairs = dict(self._pairs())
        if "ansible" not in pairs and (self.vault_id or self.vault_password_file):
            raise ConfigError("--vault-id and --vault-password-file are for ansible sources")
        if "k8s" not in pairs and (self.context or self.namespace or self.selector):
            raise ConfigError("--context, --namespace and --selector are for k8s sources")
        parts = []
        if "ansible" in pairs:
            parts.append(self._ansible(pairs["ansible"]))
        if "k8s" in pairs:
            parts.append(self._k8s(pairs["k8s"]))
        combined: dict[str, Any] = combined_source(parts)
        return combined

    def _ansible(self, path: Path | None) -> dict[str, Any]:
        from secretsd.migrations import sources

        if path is None:
            raise ConfigError("migrate ansible needs the root of the Ansible tree: ansible <root>")
        described: dict[str, Any] = sources.ansible_source(
            path,
            self.vault_id or [],
            self.vault_password_file or [],
            scan_plaintext=not self.no_plaintext,
        )
        return described

    def _k8s(self, path: Path | None) -> dict[str, Any]:
        from secretsd.migrations import sources
        from secretsd.migrations.kube import HELM_RELEASE_TYPE, SA_TOKEN_TYPE

        if (path is None) == (self.context is None):
            raise ConfigError("migrate k8s needs either a manifest file/folder or --context NAME")
        if path is not None:
            if self.selector or self.include_service_account_tokens or self.include_helm_releases:
                raise ConfigError(
                    "--selector and --include-* are for a live cluster (--context); manifests "
                    "on disk are imported whole"
                )
            files: dict[str, Any] = sources.k8s_files_source(path, namespaces=self.namespace or [])
            return files
        skip = set()
        if not self.include_service_account_tokens:
            skip.add(SA_TOKEN_TYPE)
        if not self.include_helm_releases:
            skip.add(HELM_RELEASE_TYPE)
        live: dict[str, Any] = sources.k8s_live_source(
            self.context,
            namespaces=self.namespace or [],
            selector=self.selector,
            skip_types=sorted(skip),
        )
        return live

    def mapper(self) -> tuple[Mapper, dict[str, Any]]:
        from secretsd.migrations.mapping import Mapper, load_rules

        loaded, digest = load_rules(self.rules) if self.rules is not None else ([], None)
        prefix_text = (self.prefix or "").strip("/")
        mapping = {
            "prefix": prefix_text,
            "rules_file": str(self.rules.absolute()) if self.rules else None,
            "rules_digest": digest,
        }
        return Mapper(loaded, prefix_text), mapping


_SHARED = [
    inspect.Parameter("sources", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=SourcesArg),
    *(
        inspect.Parameter(
            name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation
        )
        for name, annotation, default in [
            ("vault_id", VaultIdOpt, None),
            ("vault_password_file", PasswordFileOpt, None),
            ("context", ContextOpt, None),
            ("namespace", NamespaceOpt, None),
            ("selector", SelectorOpt, None),
            ("include_service_account_tokens", IncludeSaOpt, False),
            ("include_helm_releases", IncludeHelmOpt, False),
            ("prefix", PrefixOpt, None),
            ("rules", RulesOpt, None),
            ("no_plaintext", NoPlainOpt, False),
        ]
    ),
]


def source_command(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``app.command(name)`` for a function whose first parameter is ``options: SourceOptions``.

    The shared arguments and options are added to the command's signature (so
    Typer parses and documents them) and handed to it as one object.
    """

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = list(inspect.signature(command, eval_str=True).parameters.values())
        if not own or own[0].name != "options":
            raise TypeError(f"{command.__name__}: the first parameter must be options")
        params = [*_SHARED, *own[1:]]

        @functools.wraps(command)
        def run(**given: Any) -> None:
            options = SourceOptions(**{p.name: given.pop(p.name) for p in _SHARED})
            command(options, **given)

        run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        app.command(name)(run)
        return run

    return decorate


def _mapper_from_plan(plan: Plan) -> Mapper:
    from secretsd.migrations.mapping import Mapper, load_rules

    rules_file = plan.mapping.get("rules_file")
    if not rules_file:
        return Mapper((), plan.mapping.get("prefix", ""))
    loaded, digest = load_rules(Path(rules_file))
    if digest != plan.mapping.get("rules_digest"):
        raise InvalidInput(
            f"the rules file {rules_file} changed since plan {plan.plan_id} was made; nothing "
            "was written. Make and review a new plan."
        )
    return Mapper(loaded, plan.mapping.get("prefix", ""))


def _make_plan(addr: str | None, options: SourceOptions) -> Plan:
    from secretsd.migrations.plan import build_plan
    from secretsd.migrations.sources import read_source

    source = options.source()
    mapper, mapping = options.mapper()
    with open_client(addr) as client:
        return build_plan(read_source(source), mapper, client, source=source, mapping=mapping)


def _show_plan(plan: Plan, as_json: bool) -> None:
    if as_json or not is_tty():
        print_json(plan.to_json())
        return
    rows = []
    for item in plan.items:
        notes = []
        if item.origin == "plaintext":
            notes.append(f"plaintext ({item.note})")
        if item.binary:
            notes.append("binary")
        if item.duplicate_of:
            notes.append(f"same value as {item.duplicate_of}")
        if item.problem is not None:
            notes.append(f"{item.problem.code}: {item.problem.message}")
        rows.append([item.action, item.target, item.source.label(), "; ".join(notes)])
    table(["action", "target", "source", "notes"], rows)
    counts = plan.counts()
    summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "nothing to do"
    typer.echo(f"\nPlan {plan.plan_id}: {summary}.")
    for group in plan.duplicates:
        others = ", ".join(group["reference_from"])
        typer.echo(f"Duplicate value: keep {group['keep']}, reference it from {others}.")


def _rewrite(plan: Plan, out: Path | None) -> None:
    if out is None:
        return
    from secretsd.migrations.rewrite import rewrite

    written = rewrite(plan, out)
    typer.echo(f"Rewrote {len(written)} file(s) into {out}.", err=True)


@source_command("plan")
def plan_cmd(
    options: SourceOptions,
    out: Annotated[
        Path | None, typer.Option("--out", help="Save the plan (no values) for `apply`.")
    ] = None,
    rewrite: RewriteOpt = None,
    addr: AddrOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what would be written where (new / changed / unchanged), duplicates and errors."""
    plan = _make_plan(addr, options)
    if out is not None:
        _save(plan, out)
    _show_plan(plan, as_json)
    _rewrite(plan, rewrite)
    if plan.errors:
        raise typer.Exit(2)


def _save(plan: Plan, out: Path) -> None:
    import os

    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(plan.to_json(), indent=2, sort_keys=True) + "\n", "utf-8")
    os.replace(tmp, out)


def _progress(total: int) -> Any:
    """A rich progress bar on a terminal (stderr), else nothing."""
    if total == 0 or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("writing secrets"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


@source_command("apply")
def apply_cmd(
    options: SourceOptions,
    skip_errors: Annotated[
        bool, typer.Option("--skip-errors", help="Write the good items, report the bad ones.")
    ] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=16, help="Batch requests in flight.")
    ] = 2,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=250, help="Secrets per batch request.")
    ] = 100,
    rewrite: RewriteOpt = None,
    addr: AddrOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a saved plan (`apply plan.json`), or plan and write at once (`apply k8s DIR`)."""
    from secretsd.migrations.apply import apply_plan, default_journal

    with open_client(addr) as client:
        plan_file = options.plan_file()
        if plan_file is not None:
            plan = _load_reviewed(
                plan_file, options.vault_id or [], options.vault_password_file or []
            )
            reviewed = True
        else:
            from secretsd.migrations.plan import build_plan
            from secretsd.migrations.sources import read_source

            source = options.source()
            mapper, mapping = options.mapper()
            plan = build_plan(read_source(source), mapper, client, source=source, mapping=mapping)
            reviewed = False
        journal = default_journal(client.addr, plan)
        writes = len({i.path for i in plan.items if i.action in ("new", "changed")})
        bar = _progress(writes)
        if bar is None:
            report = apply_plan(
                plan,
                client,
                skip_errors=skip_errors,
                reviewed=reviewed,
                journal=journal,
                concurrency=concurrency,
                batch_size=batch_size,
            )
        else:
            with bar:
                task = bar.add_task("write", total=writes)
                report = apply_plan(
                    plan,
                    client,
                    skip_errors=skip_errors,
                    reviewed=reviewed,
                    journal=journal,
                    concurrency=concurrency,
                    batch_size=batch_size,
                    progress=lambda done: bar.update(task, completed=done),
                )
    if as_json or not is_tty():
        print_json(report.to_json())
    else:
        typer.echo(
            f"Plan {report.plan_id}: wrote {len(report.written)} secret(s), "
            f"{report.unchanged} value(s) unchanged"
            + (
                f", {len(report.repaired)} provenance record(s) completed"
                if report.repaired
                else ""
            )
            + "."
        )
        for item in report.skipped:
            typer.echo(f"Skipped: {item.problem}", err=True)
        for failed_path, message in sorted(report.failed.items()):
            typer.echo(f"Failed: {failed_path}: {message}", err=True)
    _rewrite(plan, rewrite)
    if report.failed:
        raise typer.Exit(5)


def _load_reviewed(plan_file: Path, vault_ids: list[str], password_files: list[str]) -> Plan:
    """A saved plan with its values read again from unchanged sources (else refused).

    Password scripts and prompts named in the plan run only if given again here
    (flags) or named by the tree's ansible.cfg: a plan file is data, never code.
    """
    from secretsd.migrations.apply import check_sources
    from secretsd.migrations.plan import Plan
    from secretsd.migrations.sources import read_source, source_parts

    try:
        raw = json.loads(plan_file.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{plan_file} is neither ansible, k8s nor a plan file; make one with "
            "`secretsd migrate plan ... --out FILE`"
        ) from None
    except (OSError, ValueError, UnicodeDecodeError):
        raise InvalidInput(f"{plan_file} is not a readable JSON plan") from None
    plan = Plan.from_json(raw, str(plan_file))
    _mapper_from_plan(plan)  # refuses a changed rules file
    trusted: set[str] = set()
    for part in source_parts(plan.source):
        if part.get("type") == "ansible":
            from secretsd.migrations.vault_ids import specs_for_tree

            root = Path(str(part.get("root")))
            trusted |= {str(s) for s in specs_for_tree(root, vault_ids, password_files)}
    fresh = list(read_source(plan.source, trusted=trusted))
    check_sources(plan, fresh)
    values = {item.source: item.value for item in fresh if item.problem is None}
    for item in plan.items:
        if item.problem is None:
            if item.source not in values:  # same file, but e.g. its password changed since
                problem = next(f.problem for f in fresh if f.source == item.source)
                raise InvalidInput(
                    f"{item.source.label()} can no longer be read ({problem}); nothing was "
                    "written. Make and review a new plan."
                )
            item.value = values[item.source]
    return plan


@source_command("verify")
def verify_cmd(
    options: SourceOptions, addr: AddrOption = None, as_json: JsonOption = False
) -> None:
    """Report drift between the sources and secretsd; exit 1 if anything differs or is missing."""
    from secretsd.migrations.sources import read_source
    from secretsd.migrations.verify import verify

    source = options.source()
    mapper, _ = options.mapper()
    items = list(read_source(source))
    with open_client(addr) as client:
        drift = verify(items, mapper, client)
    bad = [d for d in drift if d.state != "in_sync"]
    if as_json or not is_tty():
        print_json({"items": [d.to_json() for d in drift], "drift": len(bad)})
    else:
        table(
            ["state", "target", "source", "message"],
            [[d.state, d.target, d.source.label(), d.message] for d in drift],
        )
        typer.echo(f"\n{len(drift) - len(bad)} in sync, {len(bad)} drifted or failed.")
    if bad:
        raise typer.Exit(1)
