"""The error hierarchy is a contract: codes, statuses, exit codes and the public names."""

from __future__ import annotations

import pytest

import secretsd
from secretsd import errors


def test_every_code_maps_back_to_its_class() -> None:
    classes = [getattr(errors, name) for name in errors.__all__ if name[0].isupper()]
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), "error codes must be unique"
    for cls in classes:
        assert errors.error_class_for_code(cls.code) is cls
    assert errors.error_class_for_code("no-such-code") is errors.SecretsdError


@pytest.mark.parametrize(
    ("cls", "status", "exit_code"),
    [
        (errors.InvalidReference, 400, 2),
        (errors.Unauthenticated, 401, 4),
        (errors.Forbidden, 403, 4),
        (errors.NotFound, 404, 3),
        (errors.CasMismatch, 409, 5),
        (errors.PayloadTooLarge, 413, 2),
        (errors.ValidationFailed, 422, 2),
        (errors.VaultUnavailable, 503, 6),
        (errors.AuditUnavailable, 503, 6),
        (errors.OutcomeUnknown, 504, 7),
    ],
)
def test_status_and_exit_codes(
    cls: type[errors.SecretsdError], status: int, exit_code: int
) -> None:
    assert cls.http_status == status
    assert cls.exit_code == exit_code
    error = cls("something specific")
    assert error.to_dict() == {"error": {"code": cls.code, "message": "something specific"}}


def test_public_names_are_pinned() -> None:
    assert sorted(secretsd.__all__) == sorted(
        [
            "AsyncClient",
            "AuditUnavailable",
            "CasMismatch",
            "Client",
            "ConfigError",
            "Conflict",
            "DatabaseUnavailable",
            "Forbidden",
            "InvalidInput",
            "InvalidPath",
            "InvalidReference",
            "NotFound",
            "OutcomeUnknown",
            "PayloadTooLarge",
            "RateLimited",
            "Reference",
            "SecretsdError",
            "Unauthenticated",
            "Unavailable",
            "ValidationFailed",
            "VaultUnavailable",
            "__version__",
            "parse_reference",
        ]
    )


def test_import_secretsd_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, secretsd; heavy = [m for m in ('fastapi', 'hvac', 'sqlalchemy', 'git', 'pydantic', "
        "'uvicorn', 'httpx') if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_the_sdk_loads_on_first_use_without_server_packages() -> None:
    import subprocess
    import sys

    code = (
        "import sys, secretsd; client = secretsd.Client; aclient = secretsd.AsyncClient; "
        "assert client.__name__ == 'Client' and aclient.__name__ == 'AsyncClient'; "
        "heavy = [m for m in ('fastapi', 'hvac', 'sqlalchemy', 'uvicorn', 'aiohttp') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
    with pytest.raises(AttributeError):
        _ = secretsd.NoSuchThing  # type: ignore[attr-defined]
