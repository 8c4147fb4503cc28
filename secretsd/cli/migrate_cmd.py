"""``secretsd migrate {plan|apply|verify} {ansible|k8s} ...``: move existing secrets into secretsd.

    secretsd migrate plan ansible ./infra --vault-id prod@~/.vault-prod --out plan.json
    secretsd migrate apply plan.json                  # exactly the reviewed plan, or nothing
    secretsd migrate apply k8s ./manifests --prefix team-a
    secretsd migrate verify k8s --context prod -n shop  # exit 1 on drift

Tables on a terminal, JSON otherwise (or with ``--json``); a progress bar on
stderr while applying on a terminal. The work is in ``secretsd.migrations``.
"""

from __future__ import annotations

import json
import sys
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

KindArg = Annotated[str, typer.Argument(help="ansible or k8s (apply: or a saved plan file).")]
PathArg = Annotated[
    Path | None,
    typer.Argument(help="The Ansible root, or a manifest file/folder.", show_default=False),
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


def _source(
    kind: str,
    path: Path | None,
    *,
    vault_id: list[str] | None,
    vault_password_file: list[str] | None,
    context: str | None,
    namespace: list[str] | None,
    selector: str | None,
    include_sa: bool,
    include_helm: bool,
    no_plaintext: bool,
) -> dict[str, Any]:
    from secretsd.migrations import sources
    from secretsd.migrations.kube import HELM_RELEASE_TYPE, SA_TOKEN_TYPE

    if kind == "ansible":
        if path is None:
            raise ConfigError("migrate ansible needs the root of the Ansible tree: ansible <root>")
        if context or namespace or selector:
            raise ConfigError("--context, --namespace and --selector are for k8s sources")
        described: dict[str, Any] = sources.ansible_source(
            path, vault_id or [], vault_password_file or [], scan_plaintext=not no_plaintext
        )
        return described
    if kind != "k8s":
        raise ConfigError(f"unknown source kind {kind!r}: use ansible or k8s")
    if vault_id or vault_password_file:
        raise ConfigError("--vault-id and --vault-password-file are for ansible sources")
    if (path is None) == (context is None):
        raise ConfigError("migrate k8s needs either a manifest file/folder or --context NAME")
    if path is not None:
        if selector or include_sa or include_helm:
            raise ConfigError(
                "--selector and --include-* are for a live cluster (--context); manifests "
                "on disk are imported whole"
            )
        files: dict[str, Any] = sources.k8s_files_source(path, namespaces=namespace or [])
        return files
    skip = set()
    if not include_sa:
        skip.add(SA_TOKEN_TYPE)
    if not include_helm:
        skip.add(HELM_RELEASE_TYPE)
    live: dict[str, Any] = sources.k8s_live_source(
        context, namespaces=namespace or [], selector=selector, skip_types=sorted(skip)
    )
    return live


def _mapper(prefix: str | None, rules: Path | None) -> tuple[Mapper, dict[str, Any]]:
    from secretsd.migrations.mapping import Mapper, load_rules

    loaded, digest = load_rules(rules) if rules is not None else ([], None)
    prefix_text = (prefix or "").strip("/")
    mapping = {
        "prefix": prefix_text,
        "rules_file": str(rules.absolute()) if rules else None,
        "rules_digest": digest,
    }
    return Mapper(loaded, prefix_text), mapping


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


def _make_plan(
    addr: str | None, source: dict[str, Any], mapper: Mapper, mapping: dict[str, Any]
) -> Plan:
    from secretsd.migrations.plan import build_plan
    from secretsd.migrations.sources import read_source

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


@app.command("plan")
def plan_cmd(
    kind: KindArg,
    path: PathArg = None,
    vault_id: VaultIdOpt = None,
    vault_password_file: PasswordFileOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    selector: SelectorOpt = None,
    include_service_account_tokens: IncludeSaOpt = False,
    include_helm_releases: IncludeHelmOpt = False,
    prefix: PrefixOpt = None,
    rules: RulesOpt = None,
    no_plaintext: NoPlainOpt = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Save the plan (no values) for `apply`.")
    ] = None,
    rewrite: RewriteOpt = None,
    addr: AddrOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what would be written where (new / changed / unchanged), duplicates and errors."""
    source = _source(
        kind,
        path,
        vault_id=vault_id,
        vault_password_file=vault_password_file,
        context=context,
        namespace=namespace,
        selector=selector,
        include_sa=include_service_account_tokens,
        include_helm=include_helm_releases,
        no_plaintext=no_plaintext,
    )
    mapper, mapping = _mapper(prefix, rules)
    plan = _make_plan(addr, source, mapper, mapping)
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


@app.command("apply")
def apply_cmd(
    kind: KindArg,
    path: PathArg = None,
    vault_id: VaultIdOpt = None,
    vault_password_file: PasswordFileOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    selector: SelectorOpt = None,
    include_service_account_tokens: IncludeSaOpt = False,
    include_helm_releases: IncludeHelmOpt = False,
    prefix: PrefixOpt = None,
    rules: RulesOpt = None,
    no_plaintext: NoPlainOpt = False,
    skip_errors: Annotated[
        bool, typer.Option("--skip-errors", help="Write the good items, report the bad ones.")
    ] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64)] = 8,
    rewrite: RewriteOpt = None,
    addr: AddrOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a saved plan (`apply plan.json`), or plan and write at once (`apply k8s DIR`)."""
    from secretsd.migrations.apply import apply_plan, default_journal

    with open_client(addr) as client:
        if kind not in ("ansible", "k8s"):
            if path is not None:
                raise ConfigError("apply PLAN takes no second argument")
            plan = _load_reviewed(Path(kind), vault_id or [], vault_password_file or [])
            reviewed = True
        else:
            source = _source(
                kind,
                path,
                vault_id=vault_id,
                vault_password_file=vault_password_file,
                context=context,
                namespace=namespace,
                selector=selector,
                include_sa=include_service_account_tokens,
                include_helm=include_helm_releases,
                no_plaintext=no_plaintext,
            )
            mapper, mapping = _mapper(prefix, rules)
            from secretsd.migrations.plan import build_plan
            from secretsd.migrations.sources import read_source

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
    from secretsd.migrations.sources import read_source

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
    if plan.source.get("type") == "ansible":
        from secretsd.migrations.vault_ids import specs_for_tree

        root = Path(str(plan.source.get("root")))
        trusted = {str(s) for s in specs_for_tree(root, vault_ids, password_files)}
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


@app.command("verify")
def verify_cmd(
    kind: KindArg,
    path: PathArg = None,
    vault_id: VaultIdOpt = None,
    vault_password_file: PasswordFileOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    selector: SelectorOpt = None,
    include_service_account_tokens: IncludeSaOpt = False,
    include_helm_releases: IncludeHelmOpt = False,
    prefix: PrefixOpt = None,
    rules: RulesOpt = None,
    no_plaintext: NoPlainOpt = False,
    addr: AddrOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report drift between the sources and secretsd; exit 1 if anything differs or is missing."""
    from secretsd.migrations.sources import read_source
    from secretsd.migrations.verify import verify

    source = _source(
        kind,
        path,
        vault_id=vault_id,
        vault_password_file=vault_password_file,
        context=context,
        namespace=namespace,
        selector=selector,
        include_sa=include_service_account_tokens,
        include_helm=include_helm_releases,
        no_plaintext=no_plaintext,
    )
    mapper, _ = _mapper(prefix, rules)
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
