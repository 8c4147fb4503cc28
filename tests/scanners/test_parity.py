"""History and tree scans must find the same secrets in the same files.

A diff stream scans many files as one buffer, a tree scan one file at a time:
any difference between the two is a bug in one of them (issue 12: the second
of several private keys added by one commit was lost in the diff stream).
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

from conftest import git
from secretsd.scanners.model import Finding
from secretsd.scanners.rules import load_default_rules
from secretsd.scanners.scan import ScanRequest, run_scan
from synth import password
from test_engine import POSITIVES


def _pem(seed: int, lines: int = 26) -> str:
    """A private-key-shaped PEM block (random body; no real key is needed to be found)."""
    rng = random.Random(seed)
    body = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(48 * lines))).decode()
    rows = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(rows) + "\n-----END PRIVATE KEY-----\n"


def _found(findings: list[Finding]) -> set[tuple[str, int, str]]:
    return {(f.path, f.line, f.rule) for f in findings}


def _both_ways(repo: Path) -> tuple[set[tuple[str, int, str]], set[tuple[str, int, str]]]:
    tree = run_scan(ScanRequest(target=repo, mode="tree", confidence="low"))
    history = run_scan(ScanRequest(target=repo, mode="history", confidence="low"))
    return _found(tree.findings), _found(history.findings)


def _commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def test_every_private_key_of_a_multi_key_commit(repo: Path) -> None:
    """Keys separated by other files in one commit: each key's END may lie beyond the window
    opened by an earlier key's BEGIN (the psf/requests "Add local TLS server" shape)."""
    expected: set[tuple[str, int, str]] = set()
    for round_, filler in enumerate(range(11_000, 16_500, 500)):
        base = repo / f"certs{round_:02d}"
        for index, name in enumerate(("a/ca.key", "b/client.key", "c/server.key", "d/x.key")):
            target = base / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_pem(round_ * 10 + index))
            expected.add((target.relative_to(repo).as_posix(), 1, "private-key"))
            # a certificate-sized file between two keys, as in a real certs directory
            (base / f"{name[0]}-notes.txt").write_text("x = 1\n" * (filler // 6))
        _commit_all(repo, f"add keys {round_}")
    tree, history = _both_ways(repo)
    assert tree == expected
    assert history == expected


def write_fixtures(repo: Path) -> None:
    """Every rule example and every engine fixture, and Kubernetes Secrets, as files."""
    for rule in load_default_rules():
        for index, example in enumerate(rule.must_match + rule.must_not_match):
            target = repo / "rules" / rule.id / str(index) / example.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(example.text)
    for index, (path, text) in enumerate(POSITIVES):
        target = repo / "engine" / str(index) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text + "\n")
    # Kubernetes Secrets, YAML and JSON, one of them a List
    (repo / "k8s").mkdir()
    (repo / "k8s" / "db.yaml").write_text(_manifest({"password": password(seed=91)}))
    secret = {"kind": "Secret", "data": {"token": _b64(password(seed=92))}}
    (repo / "k8s" / "one.json").write_text(json.dumps(secret) + "\n")
    other = {"kind": "Secret", "data": {"password": _b64(password(seed=93))}}
    listed = {"kind": "List", "items": [secret, other]}
    (repo / "k8s" / "list.json").write_text(json.dumps(listed, indent=2) + "\n")


def test_tree_and_history_find_the_same_secrets(repo: Path) -> None:
    """Every rule example and every engine fixture, committed, then scanned both ways."""
    write_fixtures(repo)
    _commit_all(repo, "fixtures")
    tree, history = _both_ways(repo)
    assert len(tree) > 150
    assert sorted((p, n) for p, n, _rule in tree if p.startswith("k8s/")) == [
        ("k8s/db.yaml", 9),
        ("k8s/list.json", 7),
        ("k8s/list.json", 13),
        ("k8s/one.json", 1),
    ]
    assert tree - history == set(), "found by the tree scan only"
    assert history - tree == set(), "found by the history scan only"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _manifest(entries: dict[str, str], name: str = "db") -> str:
    data = "".join(f"  {key}: {_b64(value)}\n" for key, value in entries.items())
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\n"
        f"type: Opaque\ndata:\n{data}"
    )


def test_secrets_whose_kind_is_outside_the_hunk(repo: Path) -> None:
    """A later commit edits a Secret's values: its hunks show neither ``kind: Secret`` nor
    ``data:`` (and a label edit splits the commit into two hunks). History must still decode
    the values as the tree scan does, in YAML and JSON, and stay quiet where the tree does."""
    first = {"username": "reporting", "password": "changeme", "token": "placeholder"}
    (repo / "k8s").mkdir()
    (repo / "k8s" / "db.yaml").write_text(_manifest(first))
    doc = {"apiVersion": "v1", "data": {"password": _b64("changeme")}, "kind": "Secret"}
    (repo / "k8s" / "api.json").write_text(json.dumps(doc, indent=4, sort_keys=True) + "\n")
    (repo / "k8s" / "cm.yaml").write_text("kind: ConfigMap\ndata:\n  mode: " + _b64("fast") + "\n")
    _commit_all(repo, "manifests with placeholders")
    second = {"username": "reporting", "password": password(seed=81), "token": password(seed=82)}
    text = _manifest(second).replace("app: db", "app: db-v2")
    (repo / "k8s" / "db.yaml").write_text(text + f"  api-key: {_b64(password(seed=83))}\n")
    doc["data"]["password"] = _b64(password(seed=84))
    (repo / "k8s" / "api.json").write_text(json.dumps(doc, indent=4, sort_keys=True) + "\n")
    # a ConfigMap value that decodes to a credential-looking text is not decoded
    (repo / "k8s" / "cm.yaml").write_text(
        "kind: ConfigMap\ndata:\n  mode: "
        + _b64("fast")
        + "\n"
        + f"  password: {_b64(password(seed=85))}\n"
    )
    # a SealedSecret's ciphertexts (its kind: line is outside the second commit's hunk)
    sealed = "kind: SealedSecret\nmetadata:\n  name: db\nspec:\n  encryptedData:\n"
    (repo / "k8s" / "sealed.yaml").write_text(sealed + "    user: AgBy3i4OJSWK+PiTySYZZA==\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sealed")
    cipher = base64.b64encode(bytes(range(3, 243, 3))).decode()
    (repo / "k8s" / "sealed.yaml").write_text(sealed + f"    password: {cipher}\n")
    _commit_all(repo, "real values")
    tree, history = _both_ways(repo)
    assert not any(p == "k8s/sealed.yaml" for p, _n, _r in tree)
    decoded = {(p, n, r) for p, n, r in tree if p != "k8s/cm.yaml"}
    assert decoded == {
        ("k8s/db.yaml", 10, "config-password"),
        ("k8s/db.yaml", 11, "config-secret"),
        ("k8s/db.yaml", 12, "config-secret"),
        ("k8s/api.json", 4, "config-password"),
    }
    assert history == tree


def test_csv_columns_under_any_path(repo: Path) -> None:
    """A CSV credential column is decoded in history too when its path has blanks, non-ASCII
    letters or an upper-case suffix (the diff header names such paths differently)."""
    rows = "id,email,password\n1,ops@corp.test,{}\n"
    for index, rel in enumerate(("dir with space/users.csv", "données/seed.CSV", "plain/a.tsv")):
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        text = rows.format(password(seed=60 + index))
        target.write_text(text.replace(",", "\t") if rel.endswith(".tsv") else text)
    _commit_all(repo, "seed data")
    tree, history = _both_ways(repo)
    assert {path for path, _line, _rule in tree} == {
        "dir with space/users.csv",
        "données/seed.CSV",
        "plain/a.tsv",
    }
    assert history == tree


def test_markdown_table_and_sql_insert_columns(repo: Path) -> None:
    """A wiki table's ``password`` column and an SQL seed's ``client_secret`` column are judged
    cell by cell, the same way in the tree and in history; other columns stay quiet."""
    wiki = (
        "## Staging access\n\n"
        "| system | user | password | notes |\n"
        "|--------|------|:--------:|-------|\n"
        f"| pgadmin | dba | {password(seed=70)} | rotated monthly |\n"
        "| grafana | ops | <ask in #ops> | SSO soon |\n"
        f"| rabbit ui | ops | `{password(seed=71)}` | |\n\n"
        "Not a table | any more\n"
    )
    seed = (
        "INSERT INTO api_clients (name, client_id, client_secret) VALUES\n"
        f"  ('warehouse', 'wh-01', '{password(seed=72)}'),\n"
        "  ('pricing', 'pr-01', ''),\n"
        f"  ('ledger', 'it''s-01', '{password(seed=73)}');\n"
        "INSERT INTO users (name, email) VALUES ('ops', 'ops@corp.test');\n"
    )
    (repo / "docs").mkdir()
    (repo / "docs" / "Staging.md").write_text(wiki)
    (repo / "db").mkdir()
    (repo / "db" / "seed.sql").write_text(seed)
    _commit_all(repo, "docs and seeds")
    tree, history = _both_ways(repo)
    assert sorted((p, n) for p, n, _rule in tree) == [
        ("db/seed.sql", 2),
        ("db/seed.sql", 4),
        ("docs/Staging.md", 5),
        ("docs/Staging.md", 7),
    ]
    assert history == tree


def test_html_and_asciidoc_table_columns(repo: Path) -> None:
    """An exported wiki page's HTML table and a runbook's AsciiDoc table with a ``Password``
    column are judged cell by cell, in the tree and in history alike; a reference in that
    column, other columns and a table without such a header stay quiet."""
    page = (
        "<h2>NOC access</h2>\n<table>\n"
        "<tr><th>Device</th><th>User</th><th>Password</th></tr>\n"
        f"<tr><td>edge-fw</td><td>noc</td><td>{password(seed=80)}</td></tr>\n"
        "<tr><td>core-sw</td><td>noc</td><td>${CORE_PW}</td></tr>\n"
        "<tr>\n  <td>lb</td>\n  <td>admin</td>\n"
        f"  <td><code>{password(seed=81)}</code></td>\n</tr>\n"
        "</table>\n<table><tr><th>Host</th><th>Note</th></tr>\n"
        f"<tr><td>db</td><td>{password(seed=82)}</td></tr></table>\n"
    )
    runbook = (
        '= MQ recovery\n\n[options="header"]\n|===\n|Account |Password |Used by\n\n'
        f"|mqm\n|{password(seed=83)}\n|queue manager owner\n\n"
        "|svc_app\n|<from the vault>\n|the app\n"
        f"|ops |{password(seed=84)} |operators\n|===\n\n"
        f"|===\n|Host |Port\n|db |{password(seed=85)}\n|===\n"
    )
    (repo / "wiki").mkdir()
    (repo / "wiki" / "NOC-Access.html").write_text(page)
    (repo / "wiki" / "mq-recovery.adoc").write_text(runbook)
    _commit_all(repo, "exported wiki pages")
    tree, history = _both_ways(repo)
    assert sorted((p, n) for p, n, _rule in tree) == [
        ("wiki/NOC-Access.html", 4),
        ("wiki/NOC-Access.html", 9),
        ("wiki/mq-recovery.adoc", 8),
        ("wiki/mq-recovery.adoc", 14),
    ]
    assert history == tree


def test_rules_for_one_kind_of_file(repo: Path) -> None:
    """Rules with ``paths`` (a Rails master key, a MongoDB keyfile, a plain password file)
    report only in such files, in the tree and in history alike; the same text in another
    file stays quiet."""
    key = random.Random(90).getrandbits(128).to_bytes(16, "big").hex()
    keyfile = base64.b64encode(random.Random(91).getrandbits(8 * 42).to_bytes(42, "big")).decode()
    plain = f"sensor:{password(seed=92)}\n"
    files = {
        "config/master.key": key + "\n",
        "db/mongo/keyfile": keyfile + "\n",
        "mosquitto/passwd.plain": plain,
        "docs/key.txt": key + "\n" + keyfile + "\n" + plain,
    }
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    _commit_all(repo, "secret files")
    tree, history = _both_ways(repo)
    assert sorted(tree) == [
        ("config/master.key", 1, "rails-master-key"),
        ("db/mongo/keyfile", 1, "mongodb-keyfile"),
        ("mosquitto/passwd.plain", 1, "plaintext-password-file"),
    ]
    assert history == tree


def test_lines_written_with_html_references(repo: Path) -> None:
    """Rendered docs and JSX comments escape quotes and brackets (``&quot;``, ``&lt;``): such a
    line is read unescaped, in the tree and in history alike. A password behind ``&quot;`` is
    found; ``&lt;password&gt;`` is a placeholder, as ``<password>`` is; a later commit that
    edits one escaped line is read the same way in its hunk."""
    page = (
        "<pre><code>DATABASES = {\n"
        "    &quot;default&quot;: {\n"
        f"        &quot;PASSWORD&quot;: &quot;{password(seed=41)}&quot;,\n"
        "    }\n"
        "}</code></pre>\n"
        "<p>CREATE USER app IDENTIFIED BY '&lt;password&gt;';</p>\n"
        "<p>Fish &amp; chips, &quot;quoted&quot; but no credential here.</p>\n"
    )
    (repo / "blog").mkdir()
    (repo / "blog" / "index.html").write_text(page)
    _commit_all(repo, "post")
    tree, history = _both_ways(repo)
    assert {(p, n) for p, n, _r in tree} == {("blog/index.html", 3)}
    assert history == tree
    (repo / "blog" / "index.html").write_text(
        page.replace(password(seed=41), password(seed=42)).replace("app", "web")
    )
    _commit_all(repo, "rotate")
    tree, history = _both_ways(repo)
    assert {(p, n) for p, n, _r in tree} == {("blog/index.html", 3)}
    assert {(p, n) for p, n, _r in history} == {("blog/index.html", 3)}
