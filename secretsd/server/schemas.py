"""Request and response bodies of API v1 (pydantic), validated strictly."""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from secretsd.bounds import MAX_SECRET_KEYS, MAX_VERSION, Count, Version, parse_uint
from secretsd.errors import InvalidPath, ValidationFailed
from secretsd.ref import validate_key, validate_path

__all__ = [
    "MAX_BATCH_WRITES",
    "RESERVED_TOP",
    "BatchWrite",
    "BatchWriteRequest",
    "MetadataUpdate",
    "PatchRequest",
    "ResolveRequest",
    "VersionsRequest",
    "WriteRequest",
    "WriteResponse",
    "secret_path",
]

MAX_RESOLVE_REFS = 1000
#: Writes in one ``POST /v1/secrets:batch`` (each is authorised, audited and done on its own).
MAX_BATCH_WRITES = 250
RESERVED_TOP = "sys"


def secret_path(path: str, *, allow_empty: bool = False) -> str:
    """Validate a secret path; the top-level folder ``sys`` is kept for administration."""
    validate_path(path, allow_empty=allow_empty)
    if path.split("/", 1)[0] == RESERVED_TOP:
        raise InvalidPath(
            f"invalid secret path {path!r}: the top-level folder 'sys' is reserved for "
            "secretsd's administration (policies, tokens, audit); store secrets elsewhere"
        )
    return path


def _check_keys(keys: list[str]) -> None:
    if len(keys) > MAX_SECRET_KEYS:
        raise ValueError(
            f"{len(keys)} keys; a secret holds at most {MAX_SECRET_KEYS} keys (split it into "
            "several secrets, e.g. one per component)"
        )
    for key in keys:
        try:
            validate_key(key)
        except InvalidPath as error:
            raise ValueError(error.message) from None


def _check_binary(data: dict[str, str | None], binary_keys: list[str]) -> None:
    for key in binary_keys:
        if key not in data or data[key] is None:
            raise ValueError(f"binary key {key!r} is not in data")
        try:
            base64.b64decode(data[key] or "", validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"the value of binary key {key!r} is not valid base64") from None


def _check_custom_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    """Vault's limits on custom metadata, checked before anything is written."""
    if value is None:
        return value
    for key, item in value.items():
        if not key or len(key) > 128:
            raise ValueError("custom metadata keys are 1 to 128 characters")
        if len(item) > 512:
            raise ValueError(f"custom metadata value of {key!r} is over 512 characters")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WriteRequest(_Strict):
    data: dict[str, str] = Field(description="The whole secret: keys to string values.")
    cas: Count | None = Field(
        default=None,
        le=MAX_VERSION,
        description="Write only if the current version is this (0: create only).",
    )
    binary_keys: list[str] = Field(
        default_factory=list, description="Keys whose values are base64 of raw bytes."
    )
    custom_metadata: dict[str, str] | None = Field(
        default=None,
        description="Merged into the secret's custom metadata ('' removes a key) right after "
        "the version is written, in the same request (e.g. provenance).",
    )

    @model_validator(mode="after")
    def _check(self) -> WriteRequest:
        if not self.data:
            raise ValueError("data is empty; a secret needs at least one key")
        _check_keys(list(self.data))
        _check_binary(dict(self.data), self.binary_keys)
        return self

    _metadata_limits = field_validator("custom_metadata")(_check_custom_metadata)


class BatchWrite(WriteRequest):
    """One write of a batch: a :class:`WriteRequest` with the path it goes to."""

    path: str = Field(description="The secret's path, as in PUT /v1/secrets/{path}.")


class BatchWriteRequest(_Strict):
    writes: list[BatchWrite] = Field(
        min_length=1, description=f"At most {MAX_BATCH_WRITES} writes, each to a distinct path."
    )

    @field_validator("writes")
    @classmethod
    def _bounded(cls, value: list[BatchWrite]) -> list[BatchWrite]:
        if len(value) > MAX_BATCH_WRITES:
            raise ValueError(
                f"{len(value)} writes in one batch; a batch holds at most {MAX_BATCH_WRITES} "
                "(split it: the SDK's put_many does)"
            )
        seen: set[str] = set()
        for index, item in enumerate(value):
            if item.path in seen:
                raise ValueError(
                    f"writes[{index}] writes {item.path!r} again; a batch writes each path "
                    "once (merge the keys into one write)"
                )
            seen.add(item.path)
        return value


class PatchRequest(_Strict):
    data: dict[str, str | None] = Field(description="Keys to set; null removes a key.")
    cas: Version | None = None
    binary_keys: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> PatchRequest:
        if not self.data:
            raise ValueError("data is empty; name at least one key to change")
        _check_keys(list(self.data))
        _check_binary(self.data, self.binary_keys)
        return self


class WriteResponse(BaseModel):
    path: str
    version: int


class VersionsRequest(_Strict):
    versions: list[Version] = Field(min_length=1, max_length=1000)

    @field_validator("versions")
    @classmethod
    def _unique(cls, value: list[int]) -> list[int]:
        return sorted(set(value))


class MetadataUpdate(_Strict):
    custom_metadata: dict[str, str] | None = Field(
        default=None, description="Merged into the existing custom metadata; '' removes a key."
    )
    max_versions: Count | None = None
    cas_required: bool | None = None

    _limits = field_validator("custom_metadata")(_check_custom_metadata)


class ResolveRequest(_Strict):
    refs: list[str] = Field(min_length=1, max_length=MAX_RESOLVE_REFS)


def parse_versions(raw: str | None) -> list[int] | None:
    """``?versions=1,2,3`` → [1, 2, 3]."""
    if raw is None or raw == "":
        return None
    parts = raw.split(",")
    if len(parts) > 1000:
        raise ValidationFailed("versions names more than 1000 versions; send fewer per request")
    try:
        return sorted({parse_uint(p, name="v", minimum=1, maximum=MAX_VERSION) for p in parts})
    except ValidationFailed:
        raise ValidationFailed(
            "versions must be a comma-separated list of positive integers up to "
            f"{MAX_VERSION}, got {raw[:40]!r}"
        ) from None
