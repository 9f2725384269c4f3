"""policy.api_keys: token format, the key store and identity resolution, on real databases."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import select

from policy.api_keys import ApiKeyIdentity, ApiKeyStore, key_id_of, new_token
from registry.actor import ANONYMOUS
from registry.errors import OperationError
from storage.tables import api_keys

TOKEN = re.compile(r"^sk_live_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")


def test_tokens_look_like_sk_live_id_secret() -> None:
    key_id, token = new_token()
    match = TOKEN.match(token)
    assert match is not None, token
    assert match.group(1) == key_id
    assert key_id_of(token) == key_id
    assert new_token()[1] != token
    assert new_token("test")[1].startswith("sk_test_")


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("sk_live_abcdefghijkl_secret", "abcdefghijkl"),
        ("sk_live_abcdefghijkl_sec_ret_with_underscores", "abcdefghijkl"),
        ("sk_test_0123456789ab_x", "0123456789ab"),
        ("sk_live_abcdefghijk_secret", None),  # 11 characters
        ("sk_live_abcdefghijklm_secret", None),  # 13 characters
        ("pk_live_abcdefghijkl_secret", None),
        ("sk_live_abcdefghijkl", None),  # no secret part
        ("sk_abcdefghijkl", None),
        ("Bearer sk_live_abcdefghijkl_secret", None),
        ("", None),
    ],
)
def test_key_id_of(token: str, expected: str | None) -> None:
    assert key_id_of(token) == expected


async def test_create_list_and_revoke(database) -> None:
    store = ApiKeyStore(database)
    alice, alice_token = await store.create(
        tenant_id="acme", actor_id="alice", roles=("user", "admin", "user"), description="laptop"
    )
    bot, _ = await store.create(tenant_id="other", actor_id="bot", roles=("user",), kind="service")

    assert key_id_of(alice_token) == alice.id
    assert alice.roles == ("admin", "user")  # deduplicated and sorted
    assert alice.revoked_at is None

    listed = await store.list()
    assert [k.id for k in listed] == [alice.id, bot.id]
    first = listed[0]
    assert (first.tenant_id, first.actor_id, first.kind, first.roles, first.description) == (
        "acme",
        "alice",
        "user",
        ("admin", "user"),
        "laptop",
    )
    assert [k.id for k in await store.list("other")] == [bot.id]
    assert await store.list("nobody") == []

    assert await store.revoke(alice.id) is True
    assert await store.revoke(alice.id) is False  # already revoked
    assert await store.revoke("nosuchkey000") is False
    revoked = {k.id: k.revoked_at for k in await store.list()}
    assert revoked[alice.id] is not None
    assert revoked[bot.id] is None


@pytest.mark.parametrize(
    "fields",
    [
        {"tenant_id": "", "actor_id": "a", "roles": ("user",)},
        {"tenant_id": "t", "actor_id": "", "roles": ("user",)},
        {"tenant_id": "t", "actor_id": "a", "roles": ()},
        {"tenant_id": "t", "actor_id": "a", "roles": ("user",), "kind": "anonymous"},
    ],
)
async def test_create_refuses_incomplete_keys(database, fields) -> None:
    store = ApiKeyStore(database)
    with pytest.raises(ValueError):
        await store.create(**fields)
    assert await store.list() == []


async def test_the_secret_is_not_stored(database) -> None:
    store = ApiKeyStore(database)
    key, token = await store.create(tenant_id="acme", actor_id="alice", roles=("user",))
    secret = token.split("_", 3)[3]  # the secret itself may contain "_"
    assert len(secret) == 43
    async with database.connect() as conn:
        rows = (await conn.execute(select(api_keys))).mappings().all()
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == key.id
    assert row["secret_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", row["secret_hash"])
    for value in row.values():
        assert secret not in str(value)
        assert token not in str(value)


@pytest.fixture
async def issued(database):
    """``(store, identity, key, token)`` for one user key of tenant acme."""
    store = ApiKeyStore(database)
    key, token = await store.create(
        tenant_id="acme", actor_id="alice", roles=("user", "auditor"), kind="agent"
    )
    return store, ApiKeyIdentity(store, cache_seconds=60), key, token


async def test_no_credentials_is_anonymous(issued) -> None:
    _, identity, _, _ = issued
    assert await identity.resolve(None) is ANONYMOUS


async def test_a_valid_token_resolves_to_its_actor(issued) -> None:
    _, identity, key, token = issued
    actor = await identity.resolve(token)
    assert actor.id == "alice"
    assert actor.tenant_id == "acme"
    assert actor.roles == frozenset({"user", "auditor"})
    assert actor.kind == "agent"
    assert actor.credential_id == key.id
    assert actor.authenticated
    assert await identity.resolve(token) == actor  # cached or not, the same actor


async def unauthenticated(identity: ApiKeyIdentity, credentials: str) -> str:
    with pytest.raises(OperationError) as info:
        await identity.resolve(credentials)
    assert info.value.code == "UNAUTHENTICATED"
    assert info.value.status == 401
    assert not info.value.issues
    return info.value.detail


async def test_every_bad_credential_gets_the_same_answer(issued) -> None:
    store, identity, key, token = issued
    prefix, _, secret = token.partition(f"{key.id}_")
    wrong_secret = f"{prefix}{key.id}_{'A' * len(secret)}"
    unknown_id = f"{prefix}zzzzzzzzzzzz_{secret}"
    bad = [wrong_secret, unknown_id, "sk_live_short_x", "not-a-token", "", token + "x"]
    details = {await unauthenticated(identity, credentials) for credentials in bad}

    await identity.resolve(token)  # cached as valid
    assert await store.revoke(key.id)
    identity.forget()
    details.add(await unauthenticated(identity, token))

    assert len(details) == 1, details
    detail = details.pop()
    assert key.id not in detail
    assert secret not in detail


async def test_a_cached_key_is_served_until_forget(issued, database) -> None:
    _, identity, key, token = issued
    assert (await identity.resolve(token)).credential_id == key.id
    elsewhere = ApiKeyStore(database)  # as another process would revoke it
    assert await elsewhere.revoke(key.id)
    assert (await identity.resolve(token)).credential_id == key.id
    identity.forget()
    await unauthenticated(identity, token)


async def test_a_zero_cache_rereads_the_store(issued) -> None:
    store, _, key, token = issued
    identity = ApiKeyIdentity(store, cache_seconds=0)
    assert (await identity.resolve(token)).credential_id == key.id
    await store.revoke(key.id)
    await unauthenticated(identity, token)


async def test_a_revocation_in_this_process_applies_at_once(issued) -> None:
    _, identity, key, token = issued
    await identity.resolve(token)
    assert await identity.revoke(key.id)
    await unauthenticated(identity, token)


async def test_keys_scoped_to_operations(database) -> None:
    store = ApiKeyStore(database)
    scoped, token = await store.create(
        tenant_id="acme",
        actor_id="bot",
        roles=("user",),
        kind="service",
        operations=["system.ping", "billing.getInvoice", "system.ping"],
    )
    unscoped, _ = await store.create(tenant_id="acme", actor_id="alice", roles=("user",))
    assert scoped.operations == ("billing.getInvoice", "system.ping")
    assert unscoped.operations is None
    listed = {k.id: k.operations for k in await store.list("acme")}
    assert listed == {scoped.id: ("billing.getInvoice", "system.ping"), unscoped.id: None}
    actor = await ApiKeyIdentity(store).resolve(token)
    assert actor.operations == frozenset({"billing.getInvoice", "system.ping"})
    with pytest.raises(ValueError):
        await store.create(tenant_id="acme", actor_id="bot", roles=("user",), operations=[])


async def test_revoke_and_get_within_a_tenant(issued) -> None:
    store, identity, key, token = issued
    assert await store.get(key.id, tenant_id="other") is None
    assert await identity.revoke(key.id, tenant_id="other") is False
    assert (await identity.resolve(token)).credential_id == key.id  # still active
    assert await identity.revoke(key.id, tenant_id="acme") is True
    await unauthenticated(identity, token)
    found = await store.get(key.id, tenant_id="acme")
    assert found is not None and found.revoked_at is not None
    assert await store.get(key.id) == found
