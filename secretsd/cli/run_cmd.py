"""``secretsd run -- cmd args...``: start a command with secrets in its environment.

References come from three places, later ones winning:

1. the environment: a variable whose value is a ``secretsd://`` reference
   (``DB_PASSWORD=secretsd://apps/web/db#password``) is replaced by the value,
   and ``SECRETSD_ENV_<NAME>=secretsd://...`` sets ``<NAME>`` (the marker
   variable itself is not passed on);
2. ``--env-file FILE`` (dotenv: ``NAME=secretsd://...`` or ``NAME=literal``);
3. ``--env NAME=secretsd://...``.

A value that is almost a reference (``secretsd:/apps/web/db#k``, ``SECRETSD://``,
``secret://``) is refused rather than passed on as a literal (the check is
``secretsd.ref.near_miss_reference``), and a secret-looking literal given with
``--env`` gets a warning: the command line is visible to every user (``ps``).

All references are resolved in one call. The command gets SIGINT, SIGTERM,
SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 forwarded (SIGINT only when not on a
terminal, where the terminal already sends it to the whole process group), and
its exit status becomes ours (128 + n when killed by signal n). With
``--watch`` every referenced secret is watched through the long-poll: when a
value changes, the command is restarted with the new environment (default) or
sent ``--signal``.

While the command runs, the versions it was given are reported to secretsd
(``secretsd consumers <path>``, ``rotate --wait``) as ``host/<hostname>/<pid>``
(or the pod); the report is withdrawn when it exits. ``SECRETSD_REPORT_VERSIONS=false``
turns that off.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from secretsd.cli.client_cmds import AddrOption, open_client
from secretsd.cli.dotenv import ENV_NAME, parse_dotenv
from secretsd.cli.exposure import looks_secret
from secretsd.errors import InvalidInput, InvalidReference, SecretsdError
from secretsd.ref import is_reference, near_miss_reference, parse_reference

if TYPE_CHECKING:
    from secretsd.client import Client

__all__ = ["EnvPlan", "plaintext_warning", "plan_environment", "run"]

MARKER = "SECRETSD_ENV_"
FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def plaintext_warning(name: str, value: str) -> str | None:
    """A warning for a secret-looking literal given on the command line, where every
    user of the machine can read it (``ps``, ``/proc/<pid>/cmdline``); never the value."""
    if not looks_secret(name, value):
        return None
    return (
        f"secretsd run: warning: --env {name} carries a literal that looks like a secret on "
        "the command line, where other users can read it (ps); store it in secretsd and "
        f"pass --env {name}=secretsd://<path>#<key>"
    )


@dataclass
class EnvPlan:
    """What the command's environment is made of, before resolving."""

    refs: dict[str, str] = field(default_factory=dict)
    literal: dict[str, str] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def assign(self, name: str, value: str, where: str) -> None:
        if is_reference(value):
            try:
                ref = parse_reference(value)
            except InvalidReference as error:
                raise InvalidReference(f"{where}, {name}: {error.message}") from None
            if ref.key is None:
                raise InvalidReference(
                    f"{where}, {name}: {ref} names a whole secret; add '#<key>' to pick a value"
                )
            self.refs[name] = value
            self.literal.pop(name, None)
        else:
            near_miss = near_miss_reference(value)
            if near_miss is not None:  # never passed on as a literal by mistake
                raise InvalidReference(f"{where}, {name}: not a reference: {near_miss}")
            self.literal[name] = value
            self.refs.pop(name, None)


def plan_environment(
    environ: Mapping[str, str], env_files: list[Path], flags: list[str]
) -> EnvPlan:
    plan = EnvPlan()
    for name, value in environ.items():
        if name.startswith(MARKER) and len(name) > len(MARKER):
            plan.removed.add(name)
            target = name[len(MARKER) :]
            if not is_reference(value):
                raise InvalidReference(
                    f"the environment, {name}: a {MARKER}<NAME> variable holds a "
                    "secretsd:// reference"
                )
            plan.assign(target, value, "the environment")
        elif is_reference(value) or near_miss_reference(value) is not None:
            plan.assign(name, value, "the environment")
    for env_file in env_files:
        try:
            text = env_file.expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "not UTF-8 text"
            raise InvalidInput(f"cannot read env file {str(env_file)!r}: {reason}") from None
        source = f"env file {str(env_file)!r}"
        for name, value in parse_dotenv(text, source).items():
            plan.assign(name, value, source)
    for flag in flags:
        name, sep, value = flag.partition("=")
        if not sep or not ENV_NAME.fullmatch(name):
            raise InvalidInput("--env takes NAME=secretsd://path#key (NAME of letters, digits, _)")
        plan.assign(name, value, "--env")
        if name in plan.literal:
            warning = plaintext_warning(name, value)
            if warning is not None:
                plan.warnings.append(warning)
    return plan


def _signal_number(name: str) -> signal.Signals:
    text = name.upper().removeprefix("SIG")
    try:
        return signal.Signals(int(text)) if text.isdigit() else signal.Signals["SIG" + text]
    except (KeyError, ValueError):
        raise InvalidInput(f"--signal {name!r} is not a signal name, e.g. HUP or USR1") from None


def _exit_status(code: int) -> int:
    return 128 - code if code < 0 else code


class Runner:
    def __init__(
        self,
        command: list[str],
        client: Client,
        plan: EnvPlan,
        *,
        reload_signal: signal.Signals | None,
        grace: float,
    ) -> None:
        self.command = command
        self.client = client
        self.plan = plan
        self.reload_signal = reload_signal
        self.grace = grace
        self.child: subprocess.Popen[bytes] | None = None
        self.values: dict[str, bytes] = {}
        self._changed = threading.Event()
        self._wake = threading.Event()
        self._terminal = sys.stdin.isatty()

    # -- environment ------------------------------------------------------------

    def resolve(self) -> dict[str, bytes]:
        names = list(self.plan.refs)
        if not names:
            return {}
        unique = sorted(set(self.plan.refs.values()))
        answers = dict(zip(unique, self.client.resolve(unique), strict=True))
        values = {}
        for name in names:
            raw = answers[self.plan.refs[name]].value_bytes()
            if b"\0" in raw:
                raise InvalidInput(
                    f"the value for {name} contains a NUL byte, which an environment variable "
                    "cannot hold; read it with `secretsd get` into a file instead"
                )
            values[name] = raw
        return values

    def environment(self, values: Mapping[str, bytes]) -> dict[bytes, bytes]:
        env = {k: v for k, v in os.environb.items() if os.fsdecode(k) not in self.plan.removed}
        for name, literal in self.plan.literal.items():
            env[os.fsencode(name)] = os.fsencode(literal)
        for name, raw in values.items():
            env[os.fsencode(name)] = raw
        return env

    # -- the child ------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.child = subprocess.Popen(self.command, env=self.environment(self.values))
        except FileNotFoundError:
            raise InvalidInput(f"command not found: {self.command[0]!r}") from None
        except PermissionError:
            raise InvalidInput(f"cannot execute {self.command[0]!r}: permission denied") from None

    def stop_child(self) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(self.grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def forward(self, signum: int, _frame: FrameType | None) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        if signum == signal.SIGINT and self._terminal:
            return  # the terminal sent it to the child too
        child.send_signal(signum)

    # -- watching -------------------------------------------------------------------

    def on_change(self, _secret: Any) -> None:
        self._changed.set()
        self._wake.set()

    def watch(self) -> None:
        paths = {
            parse_reference(text).path
            for text in self.plan.refs.values()
            if parse_reference(text).version is None
        }
        for path in sorted(paths):
            self.client.watch(path, self.on_change)

    def reload(self) -> None:
        time.sleep(0.05)  # let writes to several secrets settle into one reload
        self._changed.clear()
        try:
            values = self.resolve()
        except SecretsdError as error:
            typer.echo(f"secretsd run: cannot resolve the new values: {error.message}", err=True)
            return
        if values == self.values:
            return
        self.values = values
        if self.reload_signal is not None:
            assert self.child is not None
            typer.echo(
                f"secretsd run: a secret changed; sending {self.reload_signal.name}", err=True
            )
            self.child.send_signal(self.reload_signal)
            return
        typer.echo("secretsd run: a secret changed; restarting the command", err=True)
        self.stop_child()
        self.start()

    # -- main loop ------------------------------------------------------------------

    def run(self, watch: bool) -> int:
        self.values = self.resolve()
        previous = {sig: signal.signal(sig, self.forward) for sig in FORWARDED}
        try:
            return self._supervise(watch)
        except BaseException:
            self.stop_child()
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _supervise(self, watch: bool) -> int:
        self.start()
        if watch:
            self.watch()
        while True:
            assert self.child is not None
            code = self.child.poll()
            if code is not None:
                return _exit_status(code)
            if self._changed.is_set():
                self.reload()
            self._wake.wait(0.05)
            self._wake.clear()


def run(
    command: Annotated[list[str], typer.Argument(help="The command and its arguments (after --).")],
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env", "-e", help="NAME=secretsd://path#key (repeatable).", show_default=False
        ),
    ] = None,
    env_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--env-file",
            help="A dotenv file of NAME=reference lines (repeatable).",
            show_default=False,
        ),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Act when a referenced secret changes.")
    ] = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="With --watch: restart the command (the default).")
    ] = False,
    reload_signal: Annotated[
        str | None,
        typer.Option(
            "--signal",
            help="With --watch: send this signal (e.g. HUP) instead.",
            show_default=False,
        ),
    ] = None,
    grace: Annotated[
        float,
        typer.Option("--grace", help="Seconds between SIGTERM and SIGKILL on restart.", min=0),
    ] = 10.0,
    addr: AddrOption = None,
) -> None:
    """Run a command with secrets resolved into its environment; pass its exit status on."""
    if restart and reload_signal is not None:
        raise InvalidInput("choose --restart or --signal, not both")
    if (restart or reload_signal is not None) and not watch:
        raise InvalidInput("--restart and --signal act on changes: add --watch")
    chosen = _signal_number(reload_signal) if reload_signal is not None else None
    plan = plan_environment(os.environ, env_file or [], env or [])
    for warning in plan.warnings:
        typer.echo(warning, err=True)
    # The command holds what was resolved for as long as it runs: report it
    # (unless SECRETSD_REPORT_VERSIONS=false); closing the client withdraws it.
    with open_client(addr, auto_renew=watch, report_versions=None) as client:
        runner = Runner(command, client, plan, reload_signal=chosen, grace=grace)
        code = runner.run(watch and bool(plan.refs))
    raise typer.Exit(code)
