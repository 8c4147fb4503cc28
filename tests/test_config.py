"""One config loader: precedence flag > env > file > default, clear errors, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretsd.config import Settings, load_settings, settings_from_env, settings_to_env
from secretsd.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SECRETSD_"):
            monkeypatch.delenv(name)


def test_precedence_flag_over_env_over_file_over_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "secretsd.toml"
    config.write_text('port = 9001\nhost = "0.0.0.0"\nvault_mount = "kv"\n')
    assert load_settings().port == 8700  # default
    assert load_settings(config_file=config).port == 9001  # file
    monkeypatch.setenv("SECRETSD_PORT", "9002")
    loaded = load_settings(config_file=config)
    assert loaded.port == 9002  # env beats file
    assert loaded.host == "0.0.0.0"  # file beats default
    assert load_settings({"port": 9003}, config_file=config).port == 9003  # flag beats env
    monkeypatch.setenv("SECRETSD_CONFIG", str(config))
    assert load_settings().vault_mount == "kv"  # SECRETSD_CONFIG names the file


def test_errors_name_the_setting_and_where_it_comes_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRETSD_PORT", "eighty")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "'port'" in caught.value.message and "SECRETSD_PORT" in caught.value.message
    monkeypatch.delenv("SECRETSD_PORT")

    config = tmp_path / "bad.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(config_file=config)
    config.write_text("port = [\n")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(config_file=config)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="vault_addr"):
        load_settings({"vault_addr": "vault.example:8200"})
    with pytest.raises(ConfigError, match="vault_prefix"):
        load_settings({"vault_prefix": "a//b"})


def test_derived_values() -> None:
    settings = load_settings({"data_dir": "/srv/sd"})
    assert settings.embedded
    assert settings.sqlalchemy_url == "sqlite:////srv/sd/secretsd.db"
    external = load_settings(
        {"vault_addr": "https://vault:8200/", "database_url": "postgresql://u:p@db/x"}
    )
    assert not external.embedded
    assert external.vault_addr == "https://vault:8200"
    assert external.sqlalchemy_url == "postgresql+psycopg://u:p@db/x"


def test_redacted_hides_every_secret() -> None:
    settings = load_settings(
        {
            "vault_token": "s.topsecret-token",
            "vault_secret_id": "secret-id-value",
            "bootstrap_token": "bootstrap-value-123456",
            "database_url": "postgresql://app:dbpassword@db:5432/secretsd",
        }
    )
    shown = settings.redacted()
    text = repr(shown)
    for secret in ("topsecret", "secret-id-value", "bootstrap-value", "dbpassword"):
        assert secret not in text
    assert shown["database_url"] == "postgresql://app:********@db:5432/secretsd"
    assert shown["vault_token"] == "********"
    assert "topsecret" not in repr(settings)


def test_resolved_settings_round_trip_for_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = load_settings({"vault_token": "s.abc", "port": 1234})
    resolved = tmp_path / "resolved.json"
    resolved.write_text(settings_to_env(settings))
    monkeypatch.setenv("SECRETSD_RESOLVED_SETTINGS_FILE", str(resolved))
    monkeypatch.setenv("SECRETSD_PORT", "9999")  # must not leak into the resolved copy
    restored = settings_from_env()
    assert isinstance(restored, Settings)
    assert restored.port == 1234
    assert restored.vault_token is not None
    assert restored.vault_token.get_secret_value() == "s.abc"


def test_vault_fallback_addrs_are_urls_from_json_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SECRETSD_VAULT_FALLBACK_ADDRS", '["http://10.0.0.2:8200/", "https://b:8200"]'
    )
    assert load_settings().vault_fallback_addrs == ["http://10.0.0.2:8200", "https://b:8200"]
    monkeypatch.setenv("SECRETSD_VAULT_FALLBACK_ADDRS", '["vault-2:8200"]')
    with pytest.raises(ConfigError, match=r"vault_fallback_addrs.*must be an http"):
        load_settings()
