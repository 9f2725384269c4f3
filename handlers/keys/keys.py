"""Handlers for keys.createKey, keys.listKeys and keys.revokeKey.

Every call stays inside the caller's tenant: the tenant of a new key, of a listing and of
a revocation is the caller's, never one named in the input.
"""

from __future__ import annotations

from policy.api_keys import ApiKey, ApiKeyIdentity, ApiKeyStore
from registry.context import Context
from registry.errors import CATALOGUE, Issue
from registry.registry import Registry
from specs.keys.create_key import CreatedKey, CreateKeyInput
from specs.keys.errors import KEY_NOT_FOUND
from specs.keys.list_keys import KeyList, KeyPage, ListKeysInput, ListKeysPageInput
from specs.keys.models import ApiKeyView, KeyKind
from specs.keys.revoke_key import RevokeKeyInput
from storage import cursors


def view(key: ApiKey) -> ApiKeyView:
    return ApiKeyView(
        id=key.id,
        actor_id=key.actor_id,
        kind=KeyKind(key.kind),
        roles=list(key.roles),
        operations=None if key.operations is None else list(key.operations),
        description=key.description,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


class KeyHandlers:
    """Key operations over the key store. Revocations go through ``identity`` so that this
    process stops accepting the key at once; ``registry`` names the operations a key may
    be scoped to."""

    def __init__(self, identity: ApiKeyIdentity, registry: Registry) -> None:
        self.identity = identity
        self.store: ApiKeyStore = identity.store
        self.registry = registry

    async def create_key(self, data: CreateKeyInput, ctx: Context) -> CreatedKey:
        if ctx.idempotency_key is not None:
            raise CATALOGUE.INVALID_INPUT(
                "keys.createKey takes no Idempotency-Key: its answer holds a secret that is "
                "shown once and never stored"
            )
        operations = None if data.operations is None else sorted(set(data.operations))
        if operations is not None:
            unknown = tuple(
                Issue(f"operations.{i}", "unknown_operation", f"No operation {key}")
                for i, key in enumerate(data.operations or ())
                if self.registry.resolve(key) is None
            )
            if unknown:
                raise CATALOGUE.INVALID_INPUT(
                    f"{len(unknown)} unknown operation key(s)", issues=unknown
                )
        scope = ctx.actor.operations
        if scope is not None and (operations is None or not set(operations) <= scope):
            raise CATALOGUE.FORBIDDEN(
                "A key limited to some operations can only create keys limited to those"
            )
        key, token = await self.store.create(
            tenant_id=ctx.tenant_id,
            actor_id=data.actor_id,
            roles=tuple(data.roles),
            kind=data.kind.value,
            description=data.description,
            operations=operations,
        )
        return CreatedKey(**dict(view(key)), token=token)

    async def list_keys(self, data: ListKeysPageInput, ctx: Context) -> KeyPage:
        keys, more = await self.store.page(
            ctx.tenant_id or "",
            include_revoked=data.include_revoked,
            limit=data.limit,
            after=cursors.after(data.cursor),
        )
        return KeyPage(
            items=[view(k) for k in keys],
            next_cursor=cursors.next_cursor(keys, more),
        )

    async def list_keys_v1(self, data: ListKeysInput, ctx: Context) -> KeyList:
        """keys.listKeys 1.0.0 (retired): every key at once."""
        keys = await self.store.list(ctx.tenant_id)
        return KeyList(
            items=[view(k) for k in keys if data.include_revoked or k.revoked_at is None]
        )

    async def revoke_key(self, data: RevokeKeyInput, ctx: Context) -> ApiKeyView:
        await self.identity.revoke(data.key_id, tenant_id=ctx.tenant_id)
        key = await self.store.get(data.key_id, tenant_id=ctx.tenant_id)
        if key is None:
            raise KEY_NOT_FOUND(f"No key {data.key_id} in this tenant")
        return view(key)
