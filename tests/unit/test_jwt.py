"""policy.jwt_tokens: signed bearer tokens, with keys made here by ``cryptography``.

Every refusal, whatever its cause, must be the same UNAUTHENTICATED "Invalid credentials".
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from structlog.testing import capture_logs

from policy.jwt_tokens import (
    ClaimNames,
    JwtVerifier,
    Refused,
    hs256_key,
    jwks_keys,
    public_key,
)
from registry.actor import ANONYMOUS, Actor
from registry.errors import OperationError

SECRET = "test-hs256-secret-of-at-least-32-bytes!!"
ISSUER = "https://idp.example.test"
AUDIENCE = "specops"


def pem_of(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def jwk_of(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(private, rsa.RSAPrivateKey):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    else:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    return {**jwk, "kid": kid, "use": "sig"}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    found: dict[str, Any] = {
        "sub": "alice",
        "tenant": "acme",
        "roles": ["user", "auditor"],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
    }
    found.update(overrides)
    return {k: v for k, v in found.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token built without PyJWT (which refuses to sign with a PEM key as HMAC secret)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = (
        b"" if secret is None else hmac.new(secret, signing_input.encode(), "sha256").digest()
    )
    return f"{signing_input}.{b64(signature)}"


def verifier(**options: Any) -> JwtVerifier:
    options.setdefault("issuer", ISSUER)
    options.setdefault("audience", AUDIENCE)
    return JwtVerifier(**options)


async def refused(v: JwtVerifier, token: str) -> str:
    with pytest.raises(OperationError) as info:
        await v.resolve(token)
    assert info.value.code == "UNAUTHENTICATED"
    assert info.value.status == 401
    return info.value.detail


# -- accepted ---------------------------------------------------------------------------


async def test_hs256() -> None:
    v = verifier(hs256=hs256_key(SECRET))
    token = jwt.encode(claims(jti="tok-1"), SECRET, algorithm="HS256")
    actor = await v.resolve(token)
    assert actor == Actor(
        id="alice",
        tenant_id="acme",
        roles=frozenset({"user", "auditor"}),
        kind="user",
        credential_id="jwt:tok-1",
    )
    assert actor.authenticated and actor.operations is None
    assert await v.resolve(None) is ANONYMOUS


async def test_rs256_with_a_pem_public_key(rsa_key) -> None:
    v = verifier(public=public_key(pem_of(rsa_key)))
    token = jwt.encode(claims(kind="service"), rsa_key, algorithm="RS256")
    actor = await v.resolve(token)
    assert (actor.id, actor.tenant_id, actor.kind) == ("alice", "acme", "service")


async def test_es256_with_a_pem_public_key(ec_key) -> None:
    v = verifier(public=public_key(pem_of(ec_key)))
    token = jwt.encode(claims(kind="agent"), ec_key, algorithm="ES256")
    actor = await v.resolve(token)
    assert (actor.id, actor.kind) == ("alice", "agent")


async def test_a_jwks_with_two_keys_picks_the_one_named_by_kid(rsa_key, ec_key) -> None:
    document = {"keys": [jwk_of(rsa_key, "rsa-1"), jwk_of(ec_key, "ec-1")]}
    v = verifier(jwks=jwks_keys(document))
    by_rsa = jwt.encode(claims(sub="r"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    by_ec = jwt.encode(claims(sub="e"), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    assert (await v.resolve(by_rsa)).id == "r"
    assert (await v.resolve(by_ec)).id == "e"

    # the right signature under another key's kid, an unknown kid, or none: refused
    wrong_kid = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "rsa-1"})
    unknown = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-2"})
    no_kid = jwt.encode(claims(), rsa_key, algorithm="RS256")
    details = {await refused(v, t) for t in (wrong_kid, unknown, no_kid)}
    assert details == {"Invalid credentials"}


async def test_a_jwks_with_one_key_serves_tokens_without_kid(ec_key) -> None:
    v = verifier(jwks=jwks_keys({"keys": [jwk_of(ec_key, "only")]}))
    assert (await v.resolve(jwt.encode(claims(), ec_key, algorithm="ES256"))).id == "alice"


async def test_roles_as_a_space_separated_string() -> None:
    v = verifier(hs256=hs256_key(SECRET))
    token = jwt.encode(claims(roles="user  admin"), SECRET, algorithm="HS256")
    assert (await v.resolve(token)).roles == frozenset({"user", "admin"})


async def test_claim_names_are_configurable() -> None:
    names = ClaimNames(subject="email", tenant="org", roles="groups", kind="typ")
    v = verifier(hs256=hs256_key(SECRET), claims=names)
    payload = claims(
        email="bob@example.test", org="globex", groups=["user"], typ="agent", tenant=None
    )
    actor = await v.resolve(jwt.encode(payload, SECRET, algorithm="HS256"))
    assert (actor.id, actor.tenant_id, actor.roles, actor.kind) == (
        "bob@example.test",
        "globex",
        frozenset({"user"}),
        "agent",
    )


async def test_expiry_within_the_leeway_is_accepted() -> None:
    expired_10s_ago = claims(exp=int(time.time()) - 10)
    token = jwt.encode(expired_10s_ago, SECRET, algorithm="HS256")
    assert (await verifier(hs256=hs256_key(SECRET), leeway_seconds=30).resolve(token)).id
    await refused(verifier(hs256=hs256_key(SECRET), leeway_seconds=0), token)


async def test_without_issuer_and_audience_settings_they_are_not_required() -> None:
    v = JwtVerifier(hs256=hs256_key(SECRET))
    token = jwt.encode(claims(iss=None, aud=None), SECRET, algorithm="HS256")
    assert (await v.resolve(token)).id == "alice"


# -- refused ----------------------------------------------------------------------------


NO_KEY = "no_key_for_alg_or_kid"


async def test_every_bad_token_gets_the_same_answer(rsa_key, other_rsa_key, ec_key) -> None:
    """Each case is refused for its own reason (logged only), with the same answer."""
    now = int(time.time())
    rsa_pem = pem_of(rsa_key)
    both = verifier(hs256=hs256_key(SECRET), public=public_key(rsa_pem))
    rsa_only = verifier(public=public_key(rsa_pem))
    hs_only = verifier(hs256=hs256_key(SECRET))

    def hs(payload: dict[str, Any], secret: str = SECRET) -> str:
        return jwt.encode(payload, secret, algorithm="HS256")

    valid = hs(claims())
    header, payload, signature = valid.split(".")
    tampered_payload = b64(json.dumps(claims(roles=["admin"])).encode())
    cases: dict[str, tuple[JwtVerifier, str, str]] = {
        "expired": (both, hs(claims(exp=now - 3600)), "ExpiredSignatureError"),
        "not yet valid": (both, hs(claims(nbf=now + 3600)), "ImmatureSignatureError"),
        "issued in the future": (both, hs(claims(iat=now + 3600)), "ImmatureSignatureError"),
        "wrong issuer": (both, hs(claims(iss="https://evil.test")), "InvalidIssuerError"),
        "no issuer": (both, hs(claims(iss=None)), "MissingRequiredClaimError"),
        "wrong audience": (both, hs(claims(aud="someone-else")), "InvalidAudienceError"),
        "no audience": (both, hs(claims(aud=None)), "MissingRequiredClaimError"),
        "no expiry": (both, hs(claims(exp=None)), "MissingRequiredClaimError"),
        "other secret": (
            both,
            hs(claims(), "another-secret-of-at-least-32-bytes!!"),
            "InvalidSignatureError",
        ),
        "tampered payload": (
            both,
            f"{header}.{tampered_payload}.{signature}",
            "InvalidSignatureError",
        ),
        "signature cut off": (both, f"{header}.{payload}.", "InvalidSignatureError"),
        "other RSA key": (
            rsa_only,
            jwt.encode(claims(), other_rsa_key, algorithm="RS256"),
            "InvalidSignatureError",
        ),
        # the header's alg cannot choose another algorithm for the configured key
        "ES256 against an RSA key": (
            rsa_only,
            jwt.encode(claims(), ec_key, algorithm="ES256"),
            NO_KEY,
        ),
        "RS256 without a public key": (
            hs_only,
            jwt.encode(claims(), rsa_key, algorithm="RS256"),
            NO_KEY,
        ),
        "alg none": (both, hand_made({"alg": "none", "typ": "JWT"}, claims(), None), NO_KEY),
        "alg None": (both, hand_made({"alg": "None"}, claims(), None), NO_KEY),
        "no alg": (both, hand_made({"typ": "JWT"}, claims(), SECRET.encode()), NO_KEY),
        "HS512": (both, jwt.encode(claims(), SECRET * 2, algorithm="HS512"), NO_KEY),
        # algorithm confusion: the RSA public key (known to all) used as an HMAC secret
        "HS256 with the public key, RSA only": (
            rsa_only,
            hand_made({"alg": "HS256", "typ": "JWT"}, claims(), rsa_pem),
            NO_KEY,
        ),
        "HS256 with the public key, both": (
            both,
            hand_made({"alg": "HS256", "typ": "JWT"}, claims(), rsa_pem),
            "InvalidSignatureError",
        ),
        "no subject": (both, hs(claims(sub=None)), "subject_claim"),
        "empty subject": (both, hs(claims(sub="")), "subject_claim"),
        "subject too long": (both, hs(claims(sub="a" * 129)), "subject_claim"),
        "no tenant": (both, hs(claims(tenant=None)), "tenant_claim"),
        "tenant not a string": (both, hs(claims(tenant=42)), "tenant_claim"),
        "no roles": (both, hs(claims(roles=None)), "roles_claim"),
        "empty roles": (both, hs(claims(roles=[])), "roles_claim"),
        "blank roles": (both, hs(claims(roles="   ")), "roles_claim"),
        "roles not strings": (both, hs(claims(roles=[1, 2])), "roles_claim"),
        "unknown kind": (both, hs(claims(kind="anonymous")), "kind_claim"),
        "garbage": (both, "not.a.jwt", "malformed"),
        "too long": (both, hs(claims(pad="x" * 9000)), "too_long"),
    }
    details = {}
    for name, (v, token, reason) in cases.items():
        with pytest.raises(Refused) as info:
            v.verify(token)
        assert info.value.reason == reason, name
        details[name] = await refused(v, token)
    assert set(details.values()) == {"Invalid credentials"}, details


async def test_a_cached_token_is_not_served_past_its_expiry() -> None:
    v = verifier(hs256=hs256_key(SECRET), leeway_seconds=0, cache_seconds=60)
    token = jwt.encode(claims(exp=int(time.time()) + 1), SECRET, algorithm="HS256")
    assert (await v.resolve(token)).id == "alice"
    await asyncio.sleep(1.2)
    await refused(v, token)


# -- credential ids ---------------------------------------------------------------------


async def test_the_credential_id_names_the_token_but_never_holds_it() -> None:
    v = verifier(hs256=hs256_key(SECRET))
    plain = jwt.encode(claims(jti="abc-123"), SECRET, algorithm="HS256")
    long_jti = jwt.encode(claims(jti="j" * 100), SECRET, algorithm="HS256")
    no_jti = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert (await v.resolve(plain)).credential_id == "jwt:abc-123"
    long_id = (await v.resolve(long_jti)).credential_id
    assert long_id == "jwt:" + hashlib.sha256(b"j" * 100).hexdigest()[:16]
    bare_id = (await v.resolve(no_jti)).credential_id
    assert bare_id == "jwt:" + hashlib.sha256(no_jti.encode()).hexdigest()[:16]
    for token, cid in ((long_jti, long_id), (no_jti, bare_id)):
        assert cid is not None and len(cid) <= 32  # the audit column's size
        for part in token.split("."):
            assert part not in cid


# -- configuration ----------------------------------------------------------------------


def test_configure_without_keys_is_off() -> None:
    assert JwtVerifier.configure() is None
    assert JwtVerifier.configure(issuer=ISSUER, audience=AUDIENCE) is None


def test_configure_reads_key_files(tmp_path, rsa_key, ec_key) -> None:
    pem = tmp_path / "key.pem"
    pem.write_bytes(pem_of(rsa_key))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk_of(ec_key, "a")]}))
    v = JwtVerifier.configure(
        hs256_secret=SECRET, public_key_file=pem, jwks_file=jwks, issuer=ISSUER
    )
    assert v is not None
    assert v.hs256 is not None and v.public is not None and len(v.jwks) == 1
    assert (v.public.algorithm, v.jwks[0].algorithm) == ("RS256", "ES256")


def write_jwks(path, *keys: tuple[Any, str]) -> None:
    """Replace the JWKS file at ``path`` as a deploy would (a new file renamed over it)."""
    fresh = path.with_suffix(".new")
    fresh.write_text(json.dumps({"keys": [jwk_of(key, kid) for key, kid in keys]}))
    fresh.replace(path)


def rotating_verifier(path, **options: Any) -> JwtVerifier:
    options.setdefault("jwks_unknown_kid_seconds", 0.0)
    options.setdefault("cache_seconds", 0.0)
    v = JwtVerifier.configure(jwks_file=path, issuer=ISSUER, audience=AUDIENCE)
    assert v is not None
    for name, value in options.items():
        setattr(v, name, value)
    return v


async def test_a_key_added_to_the_jwks_file_is_taken_up_without_a_restart(
    tmp_path, rsa_key, ec_key
) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, (rsa_key, "old"))
    v = rotating_verifier(path)
    by_new = jwt.encode(claims(sub="n"), ec_key, algorithm="ES256", headers={"kid": "new"})
    await refused(v, by_new)
    write_jwks(path, (rsa_key, "old"), (ec_key, "new"))
    assert (await v.resolve(by_new)).id == "n"
    by_old = jwt.encode(claims(sub="o"), rsa_key, algorithm="RS256", headers={"kid": "old"})
    assert (await v.resolve(by_old)).id == "o"


async def test_a_key_removed_from_the_jwks_file_stops_verifying(tmp_path, rsa_key, ec_key) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, (rsa_key, "old"), (ec_key, "new"))
    v = rotating_verifier(path, jwks_recheck_seconds=0.0, cache_seconds=60.0)
    by_old = jwt.encode(claims(sub="o"), rsa_key, algorithm="RS256", headers={"kid": "old"})
    assert (await v.resolve(by_old)).id == "o"  # and cached for a minute...
    write_jwks(path, (ec_key, "new"))
    by_new = jwt.encode(claims(sub="n"), ec_key, algorithm="ES256", headers={"kid": "new"})
    assert (await v.resolve(by_new)).id == "n"  # ...until this look at the file
    await refused(v, by_old)


async def test_the_jwks_file_is_looked_at_only_when_it_is_time(tmp_path, rsa_key, ec_key) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, (rsa_key, "old"))
    v = rotating_verifier(path, jwks_unknown_kid_seconds=3600.0)
    write_jwks(path, (rsa_key, "old"), (ec_key, "new"))
    by_new = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "new"})
    await refused(v, by_new)  # too soon after the last look, even for an unknown kid
    v.jwks_unknown_kid_seconds = 0.0
    assert (await v.resolve(by_new)).id == "alice"


@pytest.mark.parametrize("content", ["", "{not json", '{"keys": []}', '{"keys": [{"kty": "oct"}]}'])
async def test_a_broken_jwks_file_keeps_the_loaded_keys(tmp_path, rsa_key, content: str) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, (rsa_key, "old"))
    v = rotating_verifier(path, jwks_recheck_seconds=0.0)
    path.write_text(content)
    by_old = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "old"})
    with capture_logs() as logs:
        assert (await v.resolve(by_old)).id == "alice"
    assert any(e["event"] == "jwks_reload_failed" and e["kept_keys"] == 1 for e in logs)
    path.unlink()
    with capture_logs() as logs:
        assert (await v.resolve(by_old)).id == "alice"
    assert any(e["event"] == "jwks_reload_failed" for e in logs)


async def test_odd_kids_never_break_the_jwks_recheck(tmp_path, rsa_key) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, (rsa_key, "old"))
    v = rotating_verifier(path)
    for kid in (["list"], {"a": 1}, 5, None):
        token = hand_made({"alg": "RS256", "kid": kid}, claims(), None)
        await refused(v, token)


@pytest.mark.parametrize(
    "secret", ["too-short", "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCg"]
)
def test_weak_or_misplaced_hs256_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError):
        hs256_key(secret)


def test_unsupported_public_keys_are_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p384 = ec.generate_private_key(ec.SECP384R1())
    for private in (small, p384):
        with pytest.raises(ValueError):
            public_key(pem_of(private))


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"keys": []},
        {"keys": [{"kty": "oct", "k": b64(SECRET.encode()), "kid": "s"}]},
    ],
)
def test_unusable_jwks_documents_are_refused(document: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        jwks_keys(document)


def test_jwks_keys_need_distinct_kids(rsa_key, ec_key) -> None:
    with pytest.raises(ValueError):
        jwks_keys({"keys": [jwk_of(rsa_key, "same"), jwk_of(ec_key, "same")]})
    with pytest.raises(ValueError):
        jwks_keys({"keys": [jwk_of(rsa_key, "rs"), {**jwk_of(ec_key, "es"), "alg": "RS256"}]})
