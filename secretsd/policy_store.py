"""Policies in secretsd's database (the decision logic is in :mod:`secretsd.policy`)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from secretsd.db.engine import database_errors
from secretsd.db.models import PolicyDocument
from secretsd.errors import Conflict, NotFound
from secretsd.policy import ADMIN_POLICY, Policy, builtin_policies, validate_policy_name

__all__ = ["PolicyStore"]


class PolicyStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def load_all(self) -> dict[str, Policy]:
        """Every policy, built-ins included (a built-in name cannot be stored)."""
        policies = builtin_policies()
        with database_errors(self._engine), self._engine.connect() as connection:
            rows = connection.execute(select(PolicyDocument.name, PolicyDocument.rules)).all()
        for row in rows:
            policies[row.name] = Policy.from_document(row.name, json.loads(row.rules))
        return policies

    def get(self, name: str) -> Policy:
        builtin = builtin_policies().get(name)
        if builtin is not None:
            return builtin
        with database_errors(self._engine), self._engine.connect() as connection:
            row = connection.execute(
                select(PolicyDocument.rules).where(PolicyDocument.name == name)
            ).one_or_none()
        if row is None:
            raise NotFound(f"no policy named {name!r}")
        return Policy.from_document(name, json.loads(row.rules))

    def names(self) -> list[str]:
        with database_errors(self._engine), self._engine.connect() as connection:
            stored = connection.execute(select(PolicyDocument.name)).scalars().all()
        return sorted({*builtin_policies(), *stored})

    def put(self, name: str, rules: Sequence[Mapping[str, object]]) -> tuple[Policy, bool]:
        """Validate and store; return the policy and whether it was created (vs replaced)."""
        validate_policy_name(name)
        if name == ADMIN_POLICY:
            raise Conflict(f"policy {name!r} is built in and cannot be changed")
        policy = Policy.from_document(name, list(rules))
        document = json.dumps(policy.to_document())
        now = time.time()
        with database_errors(self._engine), self._engine.begin() as connection:
            result = connection.execute(
                update(PolicyDocument)
                .where(PolicyDocument.name == name)
                .values(rules=document, updated_at=now)
            )
            if result.rowcount:
                return policy, False
            try:
                with connection.begin_nested():
                    connection.execute(
                        insert(PolicyDocument),
                        [{"name": name, "rules": document, "created_at": now, "updated_at": now}],
                    )
            except IntegrityError:  # created concurrently by another replica: replace it
                connection.execute(
                    update(PolicyDocument)
                    .where(PolicyDocument.name == name)
                    .values(rules=document, updated_at=now)
                )
                return policy, False
        return policy, True

    def delete(self, name: str) -> None:
        if name == ADMIN_POLICY:
            raise Conflict(f"policy {name!r} is built in and cannot be deleted")
        with database_errors(self._engine), self._engine.begin() as connection:
            result = connection.execute(delete(PolicyDocument).where(PolicyDocument.name == name))
        if result.rowcount == 0:
            raise NotFound(f"no policy named {name!r}")
