"""Signed bearer tokens (JWT): verified against configured keys, turned into actors.

Keys come from configuration only: an HS256 shared secret, a public key (PEM: RSA is
RS256, EC P-256 is ES256), a JWKS file whose keys are picked by the token's ``kid``, or
several of these. The JWKS file is looked at again every ``jwks_recheck_seconds`` and,
for a ``kid`` its keys lack, at most every ``jwks_unknown_kid_seconds``: when it changed,
its keys replace the loaded ones (and the cache of accepted tokens is dropped), so keys
rotate without a restart and a removed key stops verifying. A file that cannot be read
or parsed leaves the loaded keys in place, with an error logged.

The key decides the algorithm: a token is verified only with the one algorithm of the key
that matches it, so ``alg: none`` and algorithm confusion (an HS256 token "signed" with a
public key as its secret) are refused like any bad signature.

``iss`` and ``aud`` must match when configured; ``exp`` is required and, with ``nbf`` and
``iat``, checked with a small leeway. The actor is read from configurable claims: subject
(``sub``), tenant (``tenant``), roles (``roles``: a list or a space-separated string) and
kind (``kind``, default ``user``). A token without subject, tenant or roles is refused.

Every refusal answers the same UNAUTHENTICATED "Invalid credentials"; the reason is only
logged (its name, never the token).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard

import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from policy.api_keys import INVALID_CREDENTIALS
from registry.actor import ANONYMOUS, Actor, ActorKind
from registry.errors import CATALOGUE

log = structlog.get_logger("specops.identity.jwt")

Algorithm = Literal["HS256", "RS256", "ES256"]
TOKEN_KINDS: tuple[ActorKind, ...] = ("user", "service", "agent")
MAX_TOKEN_LENGTH = 8192
MIN_SECRET_BYTES = 32
MIN_RSA_BITS = 2048
#: Sizes of the audit columns the actor's names go to.
MAX_SUBJECT, MAX_TENANT, MAX_ROLE, MAX_ROLES = 128, 64, 64, 50
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]+$")
_ROLE = re.compile(r"^[^\s\x00-\x1f\x7f]+$")
_SAFE_JTI = re.compile(r"^[A-Za-z0-9._:-]{1,28}$")


class Refused(Exception):
    """A token is not accepted; ``reason`` is for logs only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A key tokens may be signed with, and the one algorithm it verifies."""

    algorithm: Algorithm
    key: Any  # bytes (HS256) or a cryptography public key
    kid: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimNames:
    """Which claims name the actor."""

    subject: str = "sub"
    tenant: str = "tenant"
    roles: str = "roles"
    kind: str = "kind"


def hs256_key(secret: str | bytes) -> VerificationKey:
    """The shared secret as a key; at least 32 bytes (RFC 7518 section 3.2)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    if len(raw) < MIN_SECRET_BYTES:
        raise ValueError(f"the HS256 secret must be at least {MIN_SECRET_BYTES} bytes")
    if raw.lstrip().startswith(b"-----BEGIN") or raw.startswith(b"ssh-"):
        raise ValueError("the HS256 secret looks like a public key; configure it as one")
    return VerificationKey("HS256", raw)


def _algorithm_of(public_key: Any) -> Algorithm:
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA keys need at least {MIN_RSA_BITS} bits")
        return "RS256"
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(
        public_key.curve, ec.SECP256R1
    ):
        return "ES256"
    raise ValueError("only RSA (RS256) and EC P-256 (ES256) public keys are supported")


def public_key(pem: bytes, kid: str | None = None) -> VerificationKey:
    """A PEM public key (``-----BEGIN PUBLIC KEY-----``) as a key."""
    loaded = load_pem_public_key(pem)
    return VerificationKey(_algorithm_of(loaded), loaded, kid)


def jwks_keys(document: Mapping[str, Any]) -> tuple[VerificationKey, ...]:
    """The signing keys of a JWKS document: RSA and EC P-256 only, each with a distinct
    ``kid`` when there are several. Symmetric (``oct``) keys are refused: the shared
    secret is configured on its own."""
    entries = document.get("keys")
    if not isinstance(entries, list) or not entries:
        raise ValueError("a JWKS document needs a non-empty 'keys' list")
    found: list[VerificationKey] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError("every JWKS entry must be an object")
        if entry.get("use", "sig") != "sig":
            continue  # an encryption key
        if entry.get("kty") not in ("RSA", "EC"):
            raise ValueError(f"JWKS key type {entry.get('kty')!r} is not supported")
        try:
            loaded = jwt.PyJWK(entry).key
        except jwt.PyJWTError as exc:
            raise ValueError(f"JWKS key {entry.get('kid')!r} cannot be read: {exc}") from None
        algorithm = _algorithm_of(loaded)
        if entry.get("alg", algorithm) != algorithm:
            raise ValueError(f"JWKS key {entry.get('kid')!r}: alg must be {algorithm}")
        kid = entry.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise ValueError("a JWKS kid must be a string")
        found.append(VerificationKey(algorithm, loaded, kid))
    kids = [k.kid for k in found]
    if len(found) > 1 and (None in kids or len(set(kids)) != len(kids)):
        raise ValueError("keys of a JWKS with several keys need distinct kids")
    if not found:
        raise ValueError("the JWKS document has no signing key")
    return tuple(found)


#: How often the JWKS file is looked at for changes, and how soon again for a token
#: whose ``kid`` the loaded keys lack (a rotation under way; also the most an unknown
#: ``kid`` can make the server look at the file).
JWKS_RECHECK_SECONDS = 30.0
JWKS_UNKNOWN_KID_SECONDS = 1.0


FileStamp = tuple[int, int, int]


def _file_stamp(path: Path) -> FileStamp:
    """What changes when a file is rewritten or replaced: its inode, size and mtime."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def read_jwks_file(path: Path) -> tuple[FileStamp, tuple[VerificationKey, ...]]:
    """The keys of a JWKS file, and its stamp taken before reading it: a change made while
    it is read is then seen at the next look. Raises OSError or ValueError."""
    stamp = _file_stamp(path)
    return stamp, jwks_keys(json.loads(path.read_text()))


class JwtVerifier:
    """Resolves ``Authorization: Bearer <JWT>`` to an actor (see the module docstring).

    Accepted tokens are cached by digest for ``cache_seconds``, never past their expiry.
    """

    def __init__(
        self,
        *,
        hs256: VerificationKey | None = None,
        public: VerificationKey | None = None,
        jwks: Sequence[VerificationKey] = (),
        issuer: str | None = None,
        audience: str | None = None,
        claims: ClaimNames | None = None,
        leeway_seconds: float = 30.0,
        cache_seconds: float = 10.0,
        jwks_file: str | Path | None = None,
        jwks_recheck_seconds: float = JWKS_RECHECK_SECONDS,
        jwks_unknown_kid_seconds: float = JWKS_UNKNOWN_KID_SECONDS,
    ) -> None:
        """The JWKS keys are those of ``jwks_file`` when one is given (read now, and looked
        at again: see the module docstring), else ``jwks``."""
        self.jwks_file = Path(jwks_file) if jwks_file else None
        self._jwks_stamp: FileStamp | None = None
        if self.jwks_file is not None:
            self._jwks_stamp, jwks = read_jwks_file(self.jwks_file)
        if hs256 is None and public is None and not jwks:
            raise ValueError("a JWT verifier needs at least one key")
        if hs256 is not None and hs256.algorithm != "HS256":
            raise ValueError("hs256 must be an HS256 key")
        if public is not None and public.algorithm == "HS256":
            raise ValueError("the public key must be an RS256 or ES256 key")
        self.hs256 = hs256
        self.public = public
        self.jwks: tuple[VerificationKey, ...] = ()
        self._by_kid: dict[str, VerificationKey] = {}
        self._use_jwks(jwks)
        self.jwks_recheck_seconds = jwks_recheck_seconds
        self.jwks_unknown_kid_seconds = jwks_unknown_kid_seconds
        self._jwks_checked_at = time.monotonic()
        self.issuer = issuer or None
        self.audience = audience or None
        self.claims = claims or ClaimNames()
        self.leeway_seconds = leeway_seconds
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Actor]] = {}

    @classmethod
    def configure(
        cls,
        *,
        hs256_secret: str | None = None,
        public_key_file: str | Path | None = None,
        jwks_file: str | Path | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        claims: ClaimNames | None = None,
        leeway_seconds: float = 30.0,
        cache_seconds: float = 10.0,
        jwks_recheck_seconds: float = JWKS_RECHECK_SECONDS,
    ) -> JwtVerifier | None:
        """A verifier for the configured keys (files are read now), or None when no key
        is configured: bearer credentials are then API keys only."""
        hs256 = hs256_key(hs256_secret) if hs256_secret else None
        public = public_key(Path(public_key_file).read_bytes()) if public_key_file else None
        if hs256 is None and public is None and not jwks_file:
            return None
        if not issuer and not audience:
            log.warning("jwt_without_issuer_or_audience")
        return cls(
            hs256=hs256,
            public=public,
            issuer=issuer,
            audience=audience,
            claims=claims,
            leeway_seconds=leeway_seconds,
            cache_seconds=cache_seconds,
            jwks_file=jwks_file,
            jwks_recheck_seconds=jwks_recheck_seconds,
        )

    async def resolve(self, credentials: str | None) -> Actor:
        if credentials is None:
            return ANONYMOUS
        digest = hashlib.sha256(credentials.encode()).hexdigest()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            actor, expires_at = self.verify(credentials)
        except Refused as refused:
            log.info("jwt_refused", reason=refused.reason)
            raise CATALOGUE.UNAUTHENTICATED(INVALID_CREDENTIALS) from None
        ttl = min(self.cache_seconds, expires_at + self.leeway_seconds - time.time())
        if ttl > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + ttl, actor)
        return actor

    def verify(self, token: str) -> tuple[Actor, float]:
        """The token's actor and expiry (epoch seconds); raises ``Refused``."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise Refused("too_long")
        try:
            header = jwt.get_unverified_header(token)
        except Exception:
            raise Refused("malformed") from None
        self._recheck_jwks(header.get("kid"))
        key = self.key_for(header.get("alg"), header.get("kid"))
        if key is None:
            raise Refused("no_key_for_alg_or_kid")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp"]},
            )
        except Exception as exc:  # any failure to verify is a refusal, never a 500
            raise Refused(type(exc).__name__) from None
        return self.actor_of(claims, token), float(claims["exp"])

    def _use_jwks(self, keys: Sequence[VerificationKey]) -> None:
        if any(k.algorithm == "HS256" for k in keys):
            raise ValueError("JWKS keys must be RS256 or ES256 keys")
        self.jwks = tuple(keys)
        self._by_kid = {k.kid: k for k in self.jwks if k.kid is not None}

    def _recheck_jwks(self, kid: object) -> None:
        """Load the JWKS file again if it changed since it was read, when it is time to
        look (see the module docstring)."""
        path = self.jwks_file
        if path is None:
            return
        now = time.monotonic()
        since = now - self._jwks_checked_at
        known = isinstance(kid, str) and kid in self._by_kid
        due = since >= self.jwks_recheck_seconds or (
            not known and since >= self.jwks_unknown_kid_seconds
        )
        if not due:
            return
        self._jwks_checked_at = now
        try:
            if _file_stamp(path) == self._jwks_stamp:
                return
            stamp, keys = read_jwks_file(path)
            self._use_jwks(keys)
        except (OSError, ValueError) as exc:
            log.error(
                "jwks_reload_failed",
                path=str(path),
                error=type(exc).__name__,
                detail=str(exc)[:300],
                kept_keys=len(self.jwks),
            )
            return
        self._jwks_stamp = stamp
        self._cache.clear()  # tokens of a removed key stop being served from it
        log.info("jwks_reloaded", path=str(path), keys=len(keys))

    def key_for(self, alg: object, kid: object) -> VerificationKey | None:
        """The one key a token with this header may be verified with, if any. The header
        names an algorithm, but only a key of that algorithm is ever used with it."""
        if alg == "HS256":
            key = self.hs256
        elif isinstance(kid, str) and kid in self._by_kid:
            key = self._by_kid[kid]
        elif self.public is not None:
            key = self.public
        elif kid is None and len(self.jwks) == 1:
            key = self.jwks[0]
        else:
            key = None
        return key if key is not None and key.algorithm == alg else None

    def actor_of(self, claims: Mapping[str, Any], token: str) -> Actor:
        names = self.claims
        subject = claims.get(names.subject)
        tenant = claims.get(names.tenant)
        if not _name(subject, MAX_SUBJECT):
            raise Refused("subject_claim")
        if not _name(tenant, MAX_TENANT):
            raise Refused("tenant_claim")
        roles = _roles(claims.get(names.roles))
        if roles is None:
            raise Refused("roles_claim")
        kind = claims.get(names.kind, "user")
        if kind not in TOKEN_KINDS:
            raise Refused("kind_claim")
        return Actor(
            id=subject,
            tenant_id=tenant,
            roles=roles,
            kind=kind,
            credential_id=credential_id(claims.get("jti"), token),
        )


def _name(value: object, size: int) -> TypeGuard[str]:
    return isinstance(value, str) and len(value) <= size and bool(_PRINTABLE.fullmatch(value))


def _roles(value: object) -> frozenset[str] | None:
    """Roles from a list of strings or a space-separated string; None when absent,
    empty or malformed."""
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not value or len(value) > MAX_ROLES:
        return None
    if not all(isinstance(r, str) and len(r) <= MAX_ROLE and _ROLE.fullmatch(r) for r in value):
        return None
    return frozenset(value)


def credential_id(jti: object, token: str) -> str:
    """How audit records name a token: ``jwt:`` and its ``jti`` when short and plain,
    else a short digest of the ``jti`` or of the whole token. Never the token."""
    if isinstance(jti, str) and _SAFE_JTI.fullmatch(jti):
        return f"jwt:{jti}"
    source = jti if isinstance(jti, str) and jti else token
    return "jwt:" + hashlib.sha256(source.encode()).hexdigest()[:16]
