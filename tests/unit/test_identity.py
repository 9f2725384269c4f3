"""policy.identity.BearerIdentity: one resolver, routing by the credential's shape to the
real API key store (on real databases) and the real JWT verifier."""

from __future__ import annotations

import time

import jwt
import pytest

from policy.api_keys import ApiKeyIdentity, ApiKeyStore
from policy.identity import BearerIdentity, looks_like_jwt
from policy.jwt_tokens import JwtVerifier, hs256_key
from registry.actor import ANONYMOUS
from registry.errors import OperationError

SECRET = "identity-test-secret-at-least-32-bytes"


def token_for(sub: str = "carol", **extra: object) -> str:
    claims = {"sub": sub, "tenant": "acme", "roles": "user", "exp": int(time.time()) + 60}
    return jwt.encode({**claims, **extra}, SECRET, algorithm="HS256")


@pytest.fixture
async def keys(database):
    """``(identity, api_key_token, key_id)``: an API key resolver with one key of acme."""
    store = ApiKeyStore(database)
    key, token = await store.create(
        tenant_id="acme", actor_id="alice", roles=("user",), operations=["system.ping"]
    )
    return ApiKeyIdentity(store, cache_seconds=0), token, key.id


async def refused(identity: BearerIdentity, credentials: str) -> str:
    with pytest.raises(OperationError) as info:
        await identity.resolve(credentials)
    assert (info.value.code, info.value.status) == ("UNAUTHENTICATED", 401)
    return info.value.detail


async def test_routes_by_shape(keys) -> None:
    api_keys, api_token, key_id = keys
    identity = BearerIdentity(api_keys, JwtVerifier(hs256=hs256_key(SECRET)))

    assert await identity.resolve(None) is ANONYMOUS

    by_key = await identity.resolve(api_token)
    assert (by_key.id, by_key.credential_id) == ("alice", key_id)
    assert by_key.operations == frozenset({"system.ping"})

    by_jwt = await identity.resolve(token_for(jti="t1"))
    assert (by_jwt.id, by_jwt.tenant_id, by_jwt.credential_id) == ("carol", "acme", "jwt:t1")
    assert by_jwt.operations is None


async def test_without_a_verifier_tokens_are_refused(keys) -> None:
    api_keys, api_token, _ = keys
    identity = BearerIdentity(api_keys)
    assert (await identity.resolve(api_token)).id == "alice"
    assert await refused(identity, token_for()) == "Invalid credentials"


async def test_every_refusal_is_the_same_whoever_makes_it(keys) -> None:
    api_keys, api_token, _ = keys
    identity = BearerIdentity(api_keys, JwtVerifier(hs256=hs256_key(SECRET)))
    wrong_secret = api_token[: -len("secret")] + "secret"
    bad = [
        "",  # what a non-Bearer Authorization header becomes
        "Basic YWxpY2U6cGFzcw==",
        "plain-words",
        "two.segments",
        "four.seg.men.ts",
        "sk_",
        "sk_live_zzzzzzzzzzzz_nosuchkey",
        wrong_secret,
        token_for(exp=int(time.time()) - 3600),
        jwt.encode({"sub": "x"}, "some-other-secret-of-32-bytes-or-more", algorithm="HS256"),
        "a.b.c",
    ]
    details = {await refused(identity, credentials) for credentials in bad}
    assert details == {"Invalid credentials"}
    # a token starting with "sk_" is an API key, never tried as a JWT
    assert await refused(identity, "sk_" + token_for()) == "Invalid credentials"


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ("eyJh.eyJz.c2ln", True),
        ("eyJh.eyJz.", True),  # an unsigned token: the verifier refuses it
        ("a-b_c.d.e", True),
        ("eyJh.eyJz", False),
        ("eyJh.eyJz.c2ln.x", False),
        ("eyJh.ey Jz.c2ln", False),
        ("eyJh.eyJz.c2ln=", False),
        ("sk_live_abcdefghijkl_secret", False),
    ],
)
def test_looks_like_jwt(credentials: str, expected: bool) -> None:
    assert looks_like_jwt(credentials) is expected
