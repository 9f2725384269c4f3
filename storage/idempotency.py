"""Idempotency keys in the database: claim, complete, release."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError

from registry.errors import Issue, Problem
from registry.fields import as_utc
from registry.ports import Claim, IdempotencyScope, StoredOutcome
from storage.database import Database
from storage.tables import idempotency_keys as t

#: The statements of every claim and completion, compiled once (values are parameters).
_CLAIM = t.insert()
_COMPLETE = (
    update(t)
    .where(
        (t.c.tenant_id == bindparam("s_tenant_id"))
        & (t.c.actor_id == bindparam("s_actor_id"))
        & (t.c.key == bindparam("s_key"))
    )
    .values(
        state="completed",
        response=bindparam("response"),
        completed_at=bindparam("completed_at"),
    )
)


def encode(stored: StoredOutcome) -> str:
    problem: dict[str, Any] | None = None
    if stored.problem is not None:
        p = stored.problem
        problem = {
            "code": p.code,
            "status": p.status,
            "title": p.title,
            "detail": p.detail,
            "retryable": p.retryable,
            "issues": [i.as_dict() for i in p.issues],
            "headers": p.headers,
        }
    return json.dumps({"output": stored.output, "problem": problem})


def decode(text: str) -> StoredOutcome:
    data = json.loads(text)
    raw = data.get("problem")
    problem = None
    if raw is not None:
        problem = Problem(
            raw["code"],
            raw["status"],
            raw["title"],
            raw["detail"],
            raw["retryable"],
            tuple(Issue(**i) for i in raw["issues"]),
            dict(raw.get("headers") or {}),
        )
    return StoredOutcome(data.get("output"), problem)


class SqlIdempotencyStore:
    """Stores finished commands for ``ttl``; a claim left running past ``stale_after``
    (its process died) is given up so the key can be used again."""

    def __init__(
        self,
        db: Database,
        *,
        ttl: timedelta = timedelta(hours=24),
        stale_after: timedelta = timedelta(minutes=5),
    ) -> None:
        self.db = db
        self.ttl = ttl
        self.stale_after = stale_after

    @staticmethod
    def _where(scope: IdempotencyScope) -> Any:
        return (
            (t.c.tenant_id == scope.tenant_id)
            & (t.c.actor_id == scope.actor_id)
            & (t.c.key == scope.key)
        )

    async def claim(self, scope: IdempotencyScope, fingerprint: str) -> Claim:
        now = datetime.now(UTC)
        try:
            async with self.db.begin() as conn:
                await conn.execute(  # compiled once; the values are parameters
                    _CLAIM,
                    {
                        "tenant_id": scope.tenant_id,
                        "actor_id": scope.actor_id,
                        "key": scope.key,
                        "fingerprint": fingerprint,
                        "state": "running",
                        "created_at": now,
                    },
                )
            return Claim("claimed")
        except IntegrityError:
            pass
        async with self.db.connect() as conn:
            row = (await conn.execute(select(t).where(self._where(scope)))).mappings().first()
        if row is None:
            return Claim("busy")  # released meanwhile; the caller claims again
        created = as_utc(row["created_at"])
        finished = as_utc(row["completed_at"] or row["created_at"])
        expired = row["state"] == "completed" and now - finished > self.ttl
        stale = row["state"] == "running" and now - created > self.stale_after
        if expired or stale:
            async with self.db.begin() as conn:
                await conn.execute(
                    delete(t).where(self._where(scope), t.c.created_at == row["created_at"])
                )
            return Claim("busy")
        if row["fingerprint"] != fingerprint:
            return Claim("mismatch")
        if row["state"] != "completed":
            return Claim("busy")
        return Claim("replay", decode(row["response"]))

    async def complete(self, scope: IdempotencyScope, stored: StoredOutcome) -> None:
        async with self.db.begin() as conn:
            await conn.execute(
                _COMPLETE,
                {
                    "s_tenant_id": scope.tenant_id,
                    "s_actor_id": scope.actor_id,
                    "s_key": scope.key,
                    "response": encode(stored),
                    "completed_at": datetime.now(UTC),
                },
            )

    async def release(self, scope: IdempotencyScope) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(t).where(self._where(scope), t.c.state == "running"))
