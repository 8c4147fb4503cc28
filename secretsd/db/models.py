"""SQLAlchemy 2.0 models. Schema changes go through Alembic (``db/schema``)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AppRole",
    "AppRoleSecretId",
    "AuditHead",
    "AuditRecord",
    "Base",
    "ChangeEvent",
    "ConsumerVersion",
    "InstanceState",
    "KubernetesRole",
    "LastKnownGood",
    "PolicyDocument",
    "Token",
]

#: SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Token(Base):
    """An API token. Only the SHA-256 of the token is stored; the accessor is safe to show."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    accessor: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    policies: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of names
    login_method: Mapped[str] = mapped_column(String(32), default="token")
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ttl_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    renewable: Mapped[bool] = mapped_column(Boolean, default=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    meta: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    # The token that created this one (None: bootstrap, logins, break-glass);
    # revoking a token revokes every token below it.
    parent_accessor: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class AuditRecord(Base):
    """One audited action. ``hash`` chains each record to the one before it."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    time: Mapped[str] = mapped_column(String(32))  # ISO 8601 UTC with microseconds
    request_id: Mapped[str] = mapped_column(String(64), default="")
    identity: Mapped[str] = mapped_column(String(64), default="")  # token accessor
    display_name: Mapped[str] = mapped_column(String(200), default="")
    method: Mapped[str] = mapped_column(String(32), default="")  # how the identity logged in
    action: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(600), default="")
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    client: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(String(300), default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # Which HMAC key made ``hash`` (a hash of the key, never the key); "" = plain sha256.
    key_id: Mapped[str] = mapped_column(String(16), default="")

    __table_args__ = (
        Index("ix_audit_time", "time"),
        Index("ix_audit_path", "path"),
        Index("ix_audit_identity", "identity"),
    )


class AuditHead(Base):
    """The single row every audit writer locks: the chain's last sequence and hash."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class ChangeEvent(Base):
    """A write made through secretsd, polled by every worker and replica to drop stale cache."""

    __tablename__ = "change_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # "secret", "token", ...
    key: Mapped[str] = mapped_column(String(600))
    origin: Mapped[str] = mapped_column(String(32), default="")  # the publishing process
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_change_events_created", "created_at"),)


class InstanceState(Base):
    """Small facts shared by all replicas (e.g. that the admin token was bootstrapped)."""

    __tablename__ = "instance_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class PolicyDocument(Base):
    """A named policy: its rules as JSON ``[{"path", "capabilities"}]``."""

    __tablename__ = "policies"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    rules: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class AppRole(Base):
    """A host login role: role_id + secret_id give a token with these policies."""

    __tablename__ = "approle_roles"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role_id: Mapped[str] = mapped_column(String(64), unique=True)
    policies: Mapped[str] = mapped_column(Text, default="[]")
    token_ttl: Mapped[int] = mapped_column(Integer)
    token_max_ttl: Mapped[int] = mapped_column(Integer)
    bound_cidrs: Mapped[str] = mapped_column(Text, default="[]")
    secret_id_ttl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    secret_id_num_uses: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class AppRoleSecretId(Base):
    """One secret-id of a role, stored as SHA-256, with its remaining uses."""

    __tablename__ = "approle_secret_ids"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    role_name: Mapped[str] = mapped_column(String(64), index=True)
    secret_id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    accessor: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    uses_remaining: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bound_cidrs: Mapped[str] = mapped_column(Text, default="[]")
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    meta: Mapped[str] = mapped_column(Text, default="{}")


class KubernetesRole(Base):
    """Binds service-account names and namespaces to policies for Kubernetes logins."""

    __tablename__ = "kubernetes_roles"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_accounts: Mapped[str] = mapped_column(Text)
    namespaces: Mapped[str] = mapped_column(Text)
    policies: Mapped[str] = mapped_column(Text)
    token_ttl: Mapped[int] = mapped_column(Integer)
    token_max_ttl: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    #: The cluster whose service-account tokens may log in to this role (its issuer, keys).
    cluster: Mapped[str] = mapped_column(String(64), server_default="default")


class ConsumerVersion(Base):
    """Which version of a secret one consumer (agent, SDK process) holds, and when it said so."""

    __tablename__ = "consumer_versions"

    consumer: Mapped[str] = mapped_column(String(200), primary_key=True)
    path: Mapped[str] = mapped_column(String(512), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32), default="")
    identity: Mapped[str] = mapped_column(String(64), default="")  # token accessor
    display_name: Mapped[str] = mapped_column(String(200), default="")
    last_seen: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_consumer_versions_path", "path"),)


class LastKnownGood(Base):
    """The last version of a secret any worker read from Vault, sealed with AES-GCM.

    Served (marked stale) only while Vault is down; the key lives in Vault,
    never in this database. See ``secretsd/server/stale_store.py``.
    """

    __tablename__ = "last_known_good"

    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    version_key: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0 = "latest"
    version: Mapped[int] = mapped_column(Integer)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    stored_at: Mapped[float] = mapped_column(Float)
