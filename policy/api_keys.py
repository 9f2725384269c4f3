"""API keys: ``sk_<env>_<id>_<secret>``, stored as a SHA-256 of the whole token.

The secret is 256 random bits, so a fast hash is the right tool (a slow password hash
protects low-entropy secrets, which these are not). The id lets a key be named in logs,
audit records and revocations without ever showing its secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import string
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import RowMapping, select, update

from registry.actor import ANONYMOUS, Actor, ActorKind
from registry.errors import CATALOGUE
from registry.fields import as_utc
from storage import cursors
from storage.database import Database
from storage.tables import api_keys

ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 12
ACTOR_KINDS: tuple[ActorKind, ...] = ("user", "service", "agent")
_DUMMY_HASH = hashlib.sha256(b"specops-no-such-key").hexdigest()
#: The one detail of every refused credential, whatever was wrong with it.
INVALID_CREDENTIALS = "Invalid credentials"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(environment: str = "live") -> tuple[str, str]:
    """A fresh ``(key_id, token)``; the token is shown to its owner once and never stored."""
    if not environment.isalnum():
        raise ValueError("a key environment is letters and digits only, e.g. live or test")
    key_id = "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))
    return key_id, f"sk_{environment}_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(token: str) -> str | None:
    """The id part of a well-formed token, else None."""
    parts = token.split("_", 3)
    if len(parts) != 4 or parts[0] != "sk" or len(parts[2]) != ID_LENGTH:
        return None
    return parts[2]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    tenant_id: str
    actor_id: str
    kind: ActorKind
    roles: tuple[str, ...]
    description: str | None
    created_at: datetime
    revoked_at: datetime | None
    #: The operation keys the key may call; None: every operation its roles allow.
    operations: tuple[str, ...] | None = None


def _operations(stored: str | None) -> tuple[str, ...] | None:
    return None if stored is None else tuple(json.loads(stored))


class ApiKeyStore:
    """Creates, lists and revokes keys."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        tenant_id: str,
        actor_id: str,
        roles: tuple[str, ...],
        kind: ActorKind = "user",
        description: str | None = None,
        environment: str = "live",
        operations: Iterable[str] | None = None,
    ) -> tuple[ApiKey, str]:
        """Store a new key; returns it with the token, which exists nowhere else.

        ``operations`` limits the key to those operation keys (on top of what its roles
        allow); None leaves it unlimited."""
        if kind not in ACTOR_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ACTOR_KINDS)}")
        if not tenant_id or not actor_id or not roles:
            raise ValueError("a key needs a tenant, an actor and at least one role")
        scope = None if operations is None else tuple(sorted(set(operations)))
        if scope is not None and (not scope or not all(scope)):
            raise ValueError("a key scoped to operations needs at least one operation key")
        key_id, token = new_token(environment)
        key = ApiKey(
            key_id,
            tenant_id,
            actor_id,
            kind,
            tuple(sorted(set(roles))),
            description,
            datetime.now(UTC),
            None,
            scope,
        )
        async with self.db.begin() as conn:
            await conn.execute(
                api_keys.insert().values(
                    id=key.id,
                    tenant_id=key.tenant_id,
                    actor_id=key.actor_id,
                    kind=key.kind,
                    roles=json.dumps(list(key.roles)),
                    secret_hash=hash_token(token),
                    description=description,
                    created_at=key.created_at,
                    operations=None if scope is None else json.dumps(list(scope)),
                )
            )
        return key, token

    async def revoke(self, key_id: str, *, tenant_id: str | None = None) -> bool:
        """Revoke an active key (only within ``tenant_id`` when given); False when there
        is no such active key."""
        condition = [api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)]
        if tenant_id is not None:
            condition.append(api_keys.c.tenant_id == tenant_id)
        async with self.db.begin() as conn:
            result = await conn.execute(
                update(api_keys).where(*condition).values(revoked_at=datetime.now(UTC))
            )
        return bool(result.rowcount)

    async def page(
        self,
        tenant_id: str,
        *,
        include_revoked: bool,
        limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> tuple[list[ApiKey], bool]:
        """Up to ``limit`` keys of ``tenant_id``, oldest first, following the key that
        ``after`` names (its creation time and id); and whether more follow."""
        t = api_keys
        query = select(t).where(t.c.tenant_id == tenant_id)
        if not include_revoked:
            query = query.where(t.c.revoked_at.is_(None))
        query = cursors.keyset_page(query, t.c.created_at, t.c.id, after, limit, newest_first=False)
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return cursors.split([_key_of(r) for r in rows], limit)

    async def list(self, tenant_id: str | None = None) -> list[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if tenant_id is not None:
            query = query.where(api_keys.c.tenant_id == tenant_id)
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_key_of(r) for r in rows]

    async def get(self, key_id: str, *, tenant_id: str | None = None) -> ApiKey | None:
        """One key (revoked or not), only within ``tenant_id`` when given."""
        query = select(api_keys).where(api_keys.c.id == key_id)
        if tenant_id is not None:
            query = query.where(api_keys.c.tenant_id == tenant_id)
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else _key_of(row)

    async def lookup(self, key_id: str) -> tuple[str, Actor] | None:
        """``(secret_hash, actor)`` of an unrevoked key."""
        async with self.db.connect() as conn:
            row = (
                (await conn.execute(select(api_keys).where(api_keys.c.id == key_id)))
                .mappings()
                .first()
            )
        if row is None or row["revoked_at"] is not None:
            return None
        scope = _operations(row["operations"])
        actor = Actor(
            id=row["actor_id"],
            tenant_id=row["tenant_id"],
            roles=frozenset(json.loads(row["roles"])),
            kind=row["kind"],
            credential_id=row["id"],
            operations=None if scope is None else frozenset(scope),
        )
        return row["secret_hash"], actor


def _utc(value: datetime | None) -> datetime | None:
    """A stored time, or None, in UTC (SQLite hands back naive ones: UTC already)."""
    return None if value is None else as_utc(value)


def _key_of(row: RowMapping) -> ApiKey:
    created_at = _utc(row["created_at"])
    assert created_at is not None
    return ApiKey(
        row["id"],
        row["tenant_id"],
        row["actor_id"],
        row["kind"],
        tuple(json.loads(row["roles"])),
        row["description"],
        created_at,
        _utc(row["revoked_at"]),
        _operations(row["operations"]),
    )


class ApiKeyIdentity:
    """Resolves ``Authorization: Bearer sk_...`` to an actor.

    Every failure answers the same UNAUTHENTICATED, after the same constant-time
    comparison, whether the key does not exist, is revoked or has the wrong secret.
    Successful resolutions are cached for ``cache_seconds`` (revocations made through
    this process clear the cache at once; other processes see them within that time).
    """

    def __init__(self, store: ApiKeyStore, *, cache_seconds: float = 10.0) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Actor]] = {}
        #: Grows with every revocation here: a lookup that overlapped one is not cached.
        self._revocations = 0

    def forget(self) -> None:
        self._cache.clear()

    async def revoke(self, key_id: str, *, tenant_id: str | None = None) -> bool:
        """Revoke a key (only within ``tenant_id`` when given) and drop it from this
        process's cache at once."""
        revoked = await self.store.revoke(key_id, tenant_id=tenant_id)
        self._revocations += 1
        for digest, (_, actor) in list(self._cache.items()):
            if actor.credential_id == key_id:
                del self._cache[digest]
        return revoked

    async def resolve(self, credentials: str | None) -> Actor:
        if credentials is None:
            return ANONYMOUS
        digest = hash_token(credentials)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        key_id = key_id_of(credentials)
        revocations = self._revocations
        found = await self.store.lookup(key_id) if key_id else None
        expected = found[0] if found else _DUMMY_HASH
        if not hmac.compare_digest(expected, digest) or found is None:
            raise CATALOGUE.UNAUTHENTICATED(INVALID_CREDENTIALS)
        actor = found[1]
        if revocations == self._revocations:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self.cache_seconds, actor)
        return actor
