"""Base64 values under a Kubernetes Secret's ``data:`` are decoded and scanned (issue 12)."""

from __future__ import annotations

import base64
import json

from secretsd.scanners.engine import Engine
from secretsd.scanners.model import Fragment
from synth import github_token, password, rand

PW = password(seed=71)
TOKEN = rand(28, seed=72)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret(entries: str, kind: str = "Secret") -> str:
    return f"apiVersion: v1\nkind: {kind}\nmetadata:\n  name: app\ntype: Opaque\ndata:\n{entries}"


def _found(engine: Engine, text: str, path: str = "k8s/secret.yaml") -> list[tuple[int, str, str]]:
    found = engine.scan(Fragment(path, text.encode()))
    return [(f.line, f.rule, f.confidence) for f in found if f.confidence != "low"]


def test_a_password_and_a_token_in_data_are_found_at_their_lines(engine: Engine) -> None:
    text = _secret(
        f'  username: {_b64("billing")}\n  password: {_b64(PW)}\n  API_TOKEN: "{_b64(TOKEN)}"\n'
    )
    assert _found(engine, text) == [
        (8, "config-password", "medium"),
        (9, "config-secret", "medium"),
    ]


def test_a_comment_after_the_value_does_not_hide_it(engine: Engine) -> None:
    # a YAML comment after a base64 value: the decoded text is judged, not the base64
    found = _secret(f"  password: {_b64(PW)}  # the billing database\n")
    assert _found(engine, found) == [(7, "config-password", "medium")]
    placeholder = _secret(f"  DB_PASSWORD: {_b64('your_secure_db_password')}  # replace me\n")
    assert _found(engine, placeholder) == []


def test_a_decoded_format_keeps_its_own_rule_and_tier(engine: Engine) -> None:
    token = github_token(seed=73)
    text = _secret(f"  github-token: {_b64(token)}\n")
    assert _found(engine, text) == [(7, "github-token", "high")]


def test_a_base64_pem_key_under_tls_key(engine: Engine) -> None:
    body = base64.b64encode(bytes(range(7, 250))).decode()
    pem = (
        "-----BEGIN PRIVATE KEY-----\n"
        + "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        + "\n-----END PRIVATE KEY-----\n"
    )
    text = _secret(f"  tls.crt: {_b64('not a cert')}\n  tls.key: {_b64(pem)}\n")
    assert _found(engine, text) == [(8, "private-key", "high")]


def test_the_report_masks_the_base64_text_too(engine: Engine) -> None:
    encoded = _b64(PW)
    (finding,) = engine.scan(Fragment("s.yaml", _secret(f"  password: {encoded}\n").encode()))
    assert finding.secret == PW
    shown = finding.redacted_line()
    assert encoded not in shown and PW not in shown
    assert "k8s-secret-data" in finding.tags
    assert finding.column == 13


def test_look_alikes_stay_quiet(engine: Engine) -> None:
    # not a Secret: a ConfigMap's base64-looking value under a harmless key
    assert _found(engine, _secret(f"  LOG_FORMAT: {_b64('json')}\n", kind="ConfigMap")) == []
    # a Secret whose decoded values are no credentials: a user name, a placeholder, binary
    binary = base64.b64encode(bytes(range(0, 40))).decode()
    entries = (
        f"  username: {_b64('reporting')}\n"
        f"  password: {_b64('changeme')}\n"
        f"  password-file: {_b64('/run/secrets/db')}\n"
        f"  keystore.p12: {binary}\n"
    )
    assert _found(engine, _secret(entries)) == []
    # stringData is plain text already (the usual rules see it); data outside a Secret document
    two_docs = _secret(f"  username: {_b64('ops')}\n") + "---\nkind: ConfigMap\ndata:\n"
    two_docs += f"  greeting: {_b64('hello world')}\n"
    assert _found(engine, two_docs) == []


def test_json_secrets_are_decoded_like_yaml_ones(engine: Engine) -> None:
    """``kubectl get secret -o json`` (sorted keys: ``data`` before ``kind``), a one-line
    manifest and a List of Secrets: each ``data`` value is decoded and judged."""
    kubectl = json.dumps(
        {
            "apiVersion": "v1",
            "data": {"password": _b64(PW), "username": _b64("ops")},
            "kind": "Secret",
            "metadata": {"name": "db", "labels": {"kind": "Secret"}},
        },
        indent=4,
        sort_keys=True,
    )
    assert _found(engine, kubectl, "db.json") == [(4, "config-password", "medium")]
    one_line = json.dumps({"kind": "Secret", "data": {"token": _b64(TOKEN)}})
    (finding,) = engine.scan(Fragment("s.json", one_line.encode()))
    assert (finding.rule, finding.secret, "k8s-secret-data" in finding.tags) == (
        "config-secret",
        TOKEN,
        True,
    )
    assert _b64(TOKEN) not in finding.redacted_line()
    items = [{"kind": "Secret", "data": {"db-password": _b64(PW)}}]
    listed = json.dumps({"apiVersion": "v1", "items": items, "kind": "List"}, indent=2)
    assert _found(engine, listed, "backup.json") == [(7, "config-password", "medium")]


def test_json_look_alikes_stay_quiet(engine: Engine) -> None:
    """A decoded user name or placeholder is no credential, and neither is its base64 text;
    a ConfigMap's ``data`` or a ``data`` object of another object is not decoded."""
    quiet = {"username": _b64("ops"), "password": _b64("changeme")}
    doc = json.dumps({"kind": "Secret", "data": quiet}, indent=2)
    assert _found(engine, doc, "secret.json") == []
    config_map = json.dumps({"kind": "ConfigMap", "data": {"greeting": _b64("hello world")}})
    assert _found(engine, config_map, "cm.json") == []
    # "kind": "Secret" of a *reference* inside another object does not make its sibling a Secret
    other = {"kind": "Deployment", "ref": {"kind": "Secret"}, "data": {"note": _b64("hi there")}}
    assert _found(engine, json.dumps(other), "deploy.json") == []


def test_sealed_secret_ciphertexts_stay_quiet(engine: Engine) -> None:
    """A SealedSecret's ``encryptedData`` is ciphertext for the cluster's controller; the same
    random base64 under a ConfigMap's ``password:`` is still reported."""
    cipher = base64.b64encode(bytes(range(3, 243, 3))).decode()
    other = base64.b64encode(bytes(range(250, 10, -5))).decode()
    sealed = (
        "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db\n"
        f"spec:\n  encryptedData:\n    password: {cipher}\n    api-token: {other}\n"
    )
    assert _found(engine, sealed, "k8s/sealed.yaml") == []
    plain = f"kind: ConfigMap\ndata:\n  password: {cipher}\n"
    assert [line for line, _rule, _tier in _found(engine, plain, "k8s/cm.yaml")] == [3]


def test_a_password_column_of_a_csv_fixture(engine: Engine) -> None:
    text = f"id,email,password,api_key\n1,ana@corp.lan,{PW},\n2,bo@corp.lan,,{TOKEN}\n"
    found = engine.scan(Fragment("tests/fixtures/users.csv", text.encode()))
    assert [(f.line, f.rule, f.column) for f in found] == [
        (2, "config-password", 16),
        (3, "config-secret", 16),
    ]
    assert all("csv-column" in f.tags and PW not in f.redacted_line() for f in found)


def test_a_device_key_column_of_a_csv_file(engine: Engine) -> None:
    """LoRaWAN device lists give each device its AppKey in an ``app_key`` column; the
    identifiers beside it (DevEUI, JoinEUI) are not reported."""
    key = "5B1F9C3E7A2D4F6B8C0E1A3D5F7B9C2E"
    text = f"dev_eui,join_eui,app_key,label\n70B3D57ED005A1F2,70B3D57ED0000001,{key},reefer-7\n"
    found = engine.scan(Fragment("lorawan/devices.csv", text.encode()))
    assert [(f.line, f.column) for f in found] == [(2, 35)]
    assert key not in found[0].redacted_line()


def test_csv_look_alikes_stay_quiet(engine: Engine) -> None:
    # no credential column; a column *about* passwords; placeholders and hashes in the column
    plain = f"id,name,comment\n1,ana,{PW}\n"
    about = "id,password_changed_at,password_policy\n1,2024-01-01,strict\n"
    filler = "user,password\nana,changeme\nbo,<password>\ncy,5f4dcc3b5aa765d61d8327deb882cf99\n"
    for text in (plain, about, filler):
        found = engine.scan(Fragment("data/users.csv", text.encode()))
        assert [f.rule for f in found if f.confidence != "low"] == []
    # the same rows in a file that is not CSV are left to the usual rules
    assert engine.scan(Fragment("users.txt", f"id,email,password\n1,a@b.c,{PW}\n".encode())) == []


def test_a_base64_pem_key_is_found_once_inside_a_secret_and_on_its_own(engine: Engine) -> None:
    body = base64.b64encode(bytes(range(256)) * 2).decode()
    rows = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{rows}\n-----END RSA PRIVATE KEY-----\n"
    inside = _found(engine, _secret(f"  tls.key: {_b64(pem)}\n"))
    assert inside == [(7, "private-key", "high")]  # the decoded key, not the base64 text again
    alone = _found(engine, f"users:\n- user:\n    client-key-data: {_b64(pem)}\n", "kubeconfig")
    assert alone == [(3, "private-key-pem-base64", "high")]
    cert = pem.replace("RSA PRIVATE KEY", "CERTIFICATE")
    assert _found(engine, f"    certificate-authority-data: {_b64(cert)}\n", "kubeconfig") == []
