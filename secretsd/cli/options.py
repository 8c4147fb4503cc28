"""Options shared by commands that load settings (flag > env > file > default)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # pydantic-settings is heavy: `secretsd scan` and the hook never need it
    from secretsd.config import Settings

__all__ = ["ConfigOption", "DataDirOption", "settings_from_flags"]

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="TOML config file (also SECRETSD_CONFIG).", show_default=False),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where secretsd keeps OpenBao, SQLite and the admin token (SECRETSD_DATA_DIR).",
        show_default=False,
    ),
]


def settings_from_flags(config: Path | None, **flags: Any) -> Settings:
    from secretsd.config import load_settings

    return load_settings({k: v for k, v in flags.items() if v is not None}, config)
