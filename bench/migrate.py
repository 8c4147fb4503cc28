"""Migration toolkit: plan + apply of 10,000 secret values (Ansible and Kubernetes mixed).

    python bench/migrate.py [--values 10000] [--workers 2] [--concurrency 2]

Starts an OpenBao dev server and ``secretsd serve`` (real service, SQLite, audit
on), generates a tree, then times the real CLI (``secretsd migrate``, one
process per command, peak RSS from ``wait4``):

1. ``plan`` of both sources (JSON to /dev/null);
2. ``apply`` of both sources (plans again and writes);
3. ``apply`` again with nothing changed (must not cost a round trip per secret);
4. decryption throughput on the tree's encrypted files: ours (``cryptography``)
   beside ``ansible-vault view`` on the same files (one process for all of them),
   and beside ansible-core's VaultLib in process.

The tree: half the values in Ansible (``group_vars/gNNN/vault.yml`` encrypted
whole, 45 variables each, formats 1.1 and 1.2, plus inline ``!vault`` values
in ``host_vars``), half in Kubernetes manifests (multi-document files of
Secrets with 5 keys, some binary). Targets (issue 10): apply < 30 s, no-change
rerun < 5 s, peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import start_bao_dev, stop_process  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from sdk import start_service  # noqa: E402

TOKEN = "sdt_bench-sdk-admin-token-" + "s" * 20  # the one bench/sdk.py's service bootstraps
VARS_PER_FILE = 45
KEYS_PER_SECRET = 5
INLINE_PER_HOST = 10


def _value(rng: random.Random, n: int = 24) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits + "-_.!") for _ in range(n))


def generate(root: Path, values: int, seed: int = 7) -> dict[str, Any]:
    """An Ansible tree and a folder of manifests holding ``values`` values together."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    rng = random.Random(seed)
    ansible = root / "ansible"
    k8s = root / "k8s"
    (ansible / "group_vars").mkdir(parents=True)
    (ansible / "host_vars").mkdir()
    k8s.mkdir()
    passwords = {"dev": b"bench-dev-password", "prod": b"bench-prod-password"}
    (ansible / "pw").mkdir()
    for label, password in passwords.items():
        (ansible / "pw" / f"{label}.txt").write_bytes(password + b"\n")
    (ansible / "ansible.cfg").write_text(
        "[defaults]\nvault_identity_list = dev@pw/dev.txt, prod@pw/prod.txt\n"
    )
    secrets = {label: VaultSecret(pw) for label, pw in passwords.items()}
    vault = VaultLib(list(secrets.items()))
    ansible_values = values // 2
    inline = max(INLINE_PER_HOST, ansible_values // 10)
    whole = ansible_values - inline
    files = 0
    for index in range(0, whole, VARS_PER_FILE):
        count = min(VARS_PER_FILE, whole - index)
        text = "".join(f'vault_var_{i:02d}: "{_value(rng)}"\n' for i in range(count))
        label = "prod" if files % 2 else "dev"
        vault_id = label if files % 4 else None  # every fourth file is 1.1 (no label)
        folder = ansible / "group_vars" / f"g{files:04d}"
        folder.mkdir()
        (folder / "vault.yml").write_bytes(vault.encrypt(text, secrets[label], vault_id=vault_id))
        files += 1
    for hosts, index in enumerate(range(0, inline, INLINE_PER_HOST)):
        lines = []
        for i in range(min(INLINE_PER_HOST, inline - index)):
            cipher = vault.encrypt(_value(rng), secrets["prod"], vault_id="prod").decode()
            lines.append(
                f"host_secret_{i:02d}: !vault |\n"
                + "".join(f"  {line}\n" for line in cipher.splitlines())
            )
        (ansible / "host_vars" / f"h{hosts:04d}.yml").write_text("plain: 1\n" + "".join(lines))
    k8s_values = values - ansible_values
    docs: list[str] = []
    manifest = 0
    for index in range(0, k8s_values, KEYS_PER_SECRET):
        data = {}
        for k in range(min(KEYS_PER_SECRET, k8s_values - index)):
            raw = rng.randbytes(48) if k == 0 and index % 10 == 0 else _value(rng).encode()
            data[f"key{k}"] = base64.b64encode(raw).decode()
        body = "".join(f"  {k}: {v}\n" for k, v in data.items())
        docs.append(
            f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{index:05d}\n"
            f"  namespace: ns{index % 20:02d}\ntype: Opaque\ndata:\n{body}"
        )
        if len(docs) == 100:
            (k8s / f"m{manifest:03d}.yaml").write_text("---\n".join(docs))
            docs, manifest = [], manifest + 1
    if docs:
        (k8s / f"m{manifest:03d}.yaml").write_text("---\n".join(docs))
    return {"ansible": ansible, "k8s": k8s, "vault_files": files, "inline": inline}


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds used so far by these processes and all their descendants (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / ticks)
    wanted, total = set(pids), 0.0
    changed = True
    while changed:
        changed = False
        for pid, (parent, _) in stats.items():
            if parent in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    for pid in wanted:
        total += stats.get(pid, (0, 0.0))[1]
    return total


def run_cli(url: str, env: dict[str, str], *args: str) -> tuple[float, float, bytes, float]:
    """Run ``secretsd migrate ...``: wall seconds, peak RSS in MB, stdout, CPU seconds."""
    exe = Path(sys.executable).parent / "secretsd"
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            [str(exe), "migrate", *args], env=env, stdout=out, stderr=subprocess.PIPE
        )
        assert process.stderr is not None
        err = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - started
        out.seek(0)
        stdout = out.read()
    if process.returncode not in (0,):
        raise SystemExit(f"secretsd migrate {' '.join(args)} failed: {err.decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, stdout, usage.ru_utime + usage.ru_stime


def bench_decrypt(ansible: Path) -> dict[str, float]:
    from ansible.parsing.vault import VaultLib, VaultSecret
    from secretsd.migrations.vault_crypto import decrypt
    from secretsd.migrations.vault_ids import load_secrets, specs_for_tree

    files = sorted(ansible.glob("group_vars/*/vault.yml"))
    blobs = [f.read_bytes() for f in files]
    size = sum(len(b) for b in blobs) / 1e6
    secrets = load_secrets(specs_for_tree(ansible, env={}))
    started = time.perf_counter()
    for blob in blobs:
        decrypt(blob, secrets)
    ours = time.perf_counter() - started
    from functools import partial

    from secretsd.migrations.run_ahead import Deferred, default_workers, in_order

    workers = default_workers()  # what the importer uses: PBKDF2 releases the GIL
    started = time.perf_counter()
    for _ in in_order((Deferred(partial(_decrypt_one, b, secrets)) for b in blobs), workers):
        pass
    ours_threads = time.perf_counter() - started
    vault = VaultLib([(s.label, VaultSecret(s.password)) for s in secrets])
    from ansible.parsing.vault import VaultAES256

    VaultAES256._gen_key_initctr.cache_clear()  # generate() filled ansible's key cache
    started = time.perf_counter()
    for blob in blobs:
        vault.decrypt(blob)
    theirs_lib = time.perf_counter() - started
    exe = Path(sys.executable).parent / "ansible-vault"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    started = time.perf_counter()
    subprocess.run(
        [
            str(exe),
            "view",
            "--vault-id",
            f"dev@{ansible / 'pw/dev.txt'}",
            "--vault-id",
            f"prod@{ansible / 'pw/prod.txt'}",
            *map(str, files),
        ],
        env={**env, "PAGER": "cat", "ANSIBLE_PAGER": "cat"},
        stdout=subprocess.DEVNULL,
        check=True,
        cwd=ansible,
    )
    theirs_cli = time.perf_counter() - started
    n = len(files)
    print(f"decryption of {n} encrypted vars files ({size:.2f} MB):")
    print(f"  secretsd (cryptography)          {ours:7.2f} s   {n / ours:8.1f} files/s")
    print(
        f"  {f'secretsd, {workers} threads (importer)':<32} {ours_threads:7.2f} s   "
        f"{n / ours_threads:8.1f} files/s   ansible-vault view / this {theirs_cli / ours_threads:5.2f}x"
    )
    print(
        f"  ansible-vault view (one process) {theirs_cli:7.2f} s   {n / theirs_cli:8.1f} files/s"
        f"   ratio {theirs_cli / ours:5.2f}x"
    )
    print(
        f"  ansible-core VaultLib in process {theirs_lib:7.2f} s   {n / theirs_lib:8.1f} files/s"
        f"   ratio {theirs_lib / ours:5.2f}x"
    )
    return {"ours": ours, "threads": ours_threads, "cli": theirs_cli, "lib": theirs_lib}


def _decrypt_one(blob: bytes, secrets: Any) -> list[bytes]:
    from secretsd.migrations.vault_crypto import decrypt

    return [decrypt(blob, secrets)[0]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)  # batch requests in flight
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        tree = generate(workdir / "tree", args.values)
        print(
            f"generated {args.values} values in {time.perf_counter() - started:.1f} s: "
            f"{tree['vault_files']} encrypted vars files x {VARS_PER_FILE} vars, "
            f"{tree['inline']} inline vault values, {args.values - args.values // 2} Kubernetes values"
        )
        bao = start_bao_dev()
        service = None
        try:
            service, url = start_service(workdir, bao.addr, bao.root_token, args.workers)
            env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
            env.update(
                SECRETSD_ADDR=url, SECRETSD_TOKEN=TOKEN, XDG_STATE_HOME=str(workdir / "state")
            )
            sources = [("ansible", str(tree["ansible"])), ("k8s", str(tree["k8s"]))]
            rows = []
            for label, extra in [
                ("plan", ["--json"]),
                ("apply", ["--concurrency", str(args.concurrency)]),
                ("apply, nothing changed", ["--concurrency", str(args.concurrency)]),
            ]:
                total, peak, cpu, server_cpu = 0.0, 0.0, 0.0, 0.0
                for kind, path in sources:
                    command = "plan" if label == "plan" else "apply"
                    before = tree_cpu([service.pid, bao.process.pid])
                    elapsed, rss, _, used = run_cli(url, env, command, kind, path, *extra)
                    served = tree_cpu([service.pid, bao.process.pid]) - before
                    total += elapsed
                    peak = max(peak, rss)
                    cpu += used
                    server_cpu += served
                    print(
                        f"  {label:<24} {kind:<8} {elapsed:7.2f} s   peak RSS {rss:6.1f} MB   "
                        f"CPU: CLI {used:5.2f} s, secretsd+OpenBao {served:5.2f} s"
                    )
                rows.append((label, total, peak, cpu, server_cpu))
            print(
                f"\n{args.values} values, secretsd workers={args.workers}, --concurrency {args.concurrency}:"
            )
            targets = {"apply": 30.0, "apply, nothing changed": 5.0}
            print(
                f"  (load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
            )
            for label, total, peak, cpu, server_cpu in rows:
                goal = f"(target < {targets[label]:.0f} s)" if label in targets else ""
                print(
                    f"  {label:<24} {total:7.2f} s   peak RSS {peak:6.1f} MB   CPU: CLI {cpu:5.2f} s,"
                    f" service {server_cpu:5.2f} s  {goal}"
                )
            print()
            bench_decrypt(tree["ansible"])
        finally:
            if service is not None:
                stop_process(service)
            stop_process(bao.process)


if __name__ == "__main__":
    main()
