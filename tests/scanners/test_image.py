"""`secretsd scan --image`: real images built with umoci, converted by skopeo (no engine needed).

One two-layer image is built once per session: the first layer adds secrets
in files, the second deletes one of those files (a whiteout) and overwrites
another; the config carries secrets in Env, Cmd, Entrypoint, a label and the
build history. The same image is then scanned in all three on-disk forms: an
OCI layout directory, an OCI archive and a `docker save` archive.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from synth import github_token, password, rand

from secretsd.cli.main import main

PW = password(seed=41)
NETRC_PW = password(seed=42)
TOKEN = github_token(seed=43)
ENV_TOKEN = rand(28, seed=44)
CMD_PW = password(seed=45)
LABEL_TOKEN = rand(30, seed=46)
SECRETS = (PW, NETRC_PW, TOKEN, ENV_TOKEN, CMD_PW, LABEL_TOKEN)


def _run(*cmd: str, cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{cmd[0]} failed: {proc.stderr[-500:]}"


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    missing = [tool for tool in ("umoci", "skopeo") if shutil.which(tool) is None]
    if missing:  # .ci/run installs both; in CI a skip fails the run
        pytest.skip(f"image tests need {' and '.join(missing)} (apt-get install umoci skopeo)")
    work = tmp_path_factory.mktemp("image")
    layout = work / "layout"
    ref = f"{layout}:app"
    _run("umoci", "init", "--layout", str(layout), cwd=work)
    _run("umoci", "new", "--image", ref, cwd=work)
    bundle = work / "bundle"
    _run("umoci", "unpack", "--rootless", "--image", ref, str(bundle), cwd=work)
    rootfs = bundle / "rootfs"
    (rootfs / "etc").mkdir(exist_ok=True)
    (rootfs / "app").mkdir()
    (rootfs / "tmp").mkdir(exist_ok=True)
    (rootfs / "etc" / "app.env").write_text(f"LOG_LEVEL=info\nDB_PASSWORD={PW}\n")
    (rootfs / "tmp" / "creds.json").write_text(json.dumps({"github_token": TOKEN}) + "\n")
    (rootfs / "app" / "settings.py").write_text(f'SMTP_PASSWORD = "{NETRC_PW}"\n')
    (rootfs / "app" / "blob.bin").write_bytes(b"\0\1\2" + f"password={PW}".encode())
    _run("umoci", "repack", "--image", ref, str(bundle), cwd=work)
    # layer 2 (a fresh unpack of layer 1): delete one file, overwrite another
    bundle = work / "bundle2"
    _run("umoci", "unpack", "--rootless", "--image", ref, str(bundle), cwd=work)
    rootfs = bundle / "rootfs"
    (rootfs / "tmp" / "creds.json").unlink()
    (rootfs / "app" / "settings.py").write_text('SMTP_PASSWORD = os.environ["SMTP_PASSWORD"]\n')
    _run("umoci", "repack", "--image", ref, str(bundle), cwd=work)
    _run(
        "umoci", "config", "--image", ref,
        "--config.env", f"API_TOKEN={ENV_TOKEN}",
        "--config.entrypoint", "/usr/bin/app",
        "--config.cmd", "--db-password",
        "--config.cmd", CMD_PW,
        "--config.label", f"ci.deploy-token={LABEL_TOKEN}",
        "--history.created_by",
        f"/bin/sh -c echo 'machine git.corp.lan login ci password {NETRC_PW}' > ~/.netrc",
        cwd=work,
    )  # fmt: skip
    oci_archive = work / "app.oci.tar"
    docker_archive = work / "app.docker.tar"
    _run("skopeo", "copy", f"oci:{ref}", f"oci-archive:{oci_archive}", cwd=work)
    _run("skopeo", "copy", f"oci:{ref}", f"docker-archive:{docker_archive}:app:1", cwd=work)
    zstd_layout = work / "zstd"
    _run(
        "skopeo", "copy", "--dest-compress", "--dest-compress-format", "zstd",
        f"oci:{ref}", f"oci:{zstd_layout}:app", cwd=work,
    )  # fmt: skip
    return {
        "layout": layout,
        "oci-archive": oci_archive,
        "docker-archive": docker_archive,
        "zstd-layout": zstd_layout,
    }


def _scan(capsys: pytest.CaptureFixture[str], image: Path) -> dict[str, object]:
    code = main(["scan", "--image", str(image), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 1, err
    for secret in SECRETS:
        assert secret not in out and secret not in err
    document: dict[str, object] = json.loads(out)
    return document


def _where(finding: dict[str, object]) -> tuple[str, str]:
    path = str(finding["path"])
    assert path.startswith("image@sha256:")
    return path.split(":", 2)[2], str(finding["rule"])  # "<layer>/<path>" or "config/..."


@pytest.mark.parametrize("form", ["layout", "oci-archive", "docker-archive"])
def test_every_layer_and_the_config_are_scanned(
    images: dict[str, Path], capsys: pytest.CaptureFixture[str], form: str
) -> None:
    document = _scan(capsys, images[form])
    findings = document["findings"]
    assert isinstance(findings, list)
    found = sorted(_where(f) for f in findings)
    layers = {w.split("/", 1)[0] for w, _ in found if not w.startswith(("config", "history"))}
    assert len(layers) == 1, found  # every file secret was added by the first layer
    (first,) = layers
    assert found == sorted(
        [
            (f"{first}/etc/app.env", "config-password"),
            (f"{first}/tmp/creds.json", "github-token"),  # deleted by layer 2
            (f"{first}/app/settings.py", "generic-password"),  # overwritten by layer 2
            ("config/Env", "config-secret"),
            ("config/Cmd", "cli-password"),
            ("config/Labels", "config-secret"),
            ("history/created_by", "netrc-password"),
        ]
    )
    stats = document["stats"]
    assert isinstance(stats, dict)
    assert stats["image"]["layers"] == 2
    assert stats["skipped"]["binary"] == 1


def test_zstd_layers_are_read(images: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """skopeo's zstd layers (application/vnd.oci.image.layer.v1.tar+zstd) decompress to the same
    tar, hence the same layer ids and the same findings as the gzip form."""
    index = json.loads((images["zstd-layout"] / "index.json").read_text())
    digest = index["manifests"][0]["digest"].partition(":")[2]
    manifest = json.loads((images["zstd-layout"] / "blobs" / "sha256" / digest).read_text())
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    }
    zstd = _scan(capsys, images["zstd-layout"])
    gzip = _scan(capsys, images["layout"])
    assert zstd["stats"]["skipped"] == gzip["stats"]["skipped"]  # type: ignore[index]
    where = [sorted((f["path"], f["rule"]) for f in d["findings"]) for d in (zstd, gzip)]  # type: ignore[attr-defined]
    assert where[0] == where[1]
    assert len(where[0]) == 7


def test_the_three_forms_report_the_same_paths(
    images: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Same image id, same layer ids (diff_ids), hence the same fingerprints in every form."""
    prints = []
    for form in ("layout", "oci-archive", "docker-archive"):
        document = _scan(capsys, images[form])
        findings = document["findings"]
        assert isinstance(findings, list)
        prints.append(sorted((f["path"], f["fingerprint"]) for f in findings))
    assert prints[0] == prints[1] == prints[2]


def test_text_report_names_the_image(
    images: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", "--image", str(images["docker-archive"])]) == 1
    out = capsys.readouterr().out
    assert "7 secret(s) found in" in out
    assert "2 layer(s) of image" in out
    assert "config/Cmd:1:" in out


def test_bad_image_inputs_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.tar"
    assert main(["scan", "--image", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    assert main(["scan", "--image", str(junk)]) == 2
    assert "is not a tar archive" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["scan", "--image", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "neither manifest.json (docker save) nor index.json (OCI)" in err
    assert "Traceback" not in err
    assert main(["scan", "--image", str(empty), "--history"]) == 2
    assert "--history and --image cannot be combined" in capsys.readouterr().err
