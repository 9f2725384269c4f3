"""Signed bearer tokens (JWT) for end-to-end tests, and the settings a server needs to
accept them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import jwt

JWT_SECRET = "e2e-hs256-secret-0123456789-abcdefghij"
JWT_ISSUER = "https://idp.specops.test"
JWT_AUDIENCE = "specops-e2e"

#: A server with these variables accepts HS256 tokens signed with JWT_SECRET.
JWT_ENV: dict[str, str | None] = {
    "SPECOPS_JWT_HS256_SECRET": JWT_SECRET,
    "SPECOPS_JWT_ISSUER": JWT_ISSUER,
    "SPECOPS_JWT_AUDIENCE": JWT_AUDIENCE,
    "SPECOPS_JWT_PUBLIC_KEY_FILE": None,
    "SPECOPS_JWT_JWKS_FILE": None,
}


def mint(
    tenant_id: str,
    subject: str,
    /,
    roles: Sequence[str] = ("user",),
    *,
    secret: str = JWT_SECRET,
    lifetime: float = 300,
    **claims: Any,
) -> str:
    """An HS256 token for ``subject`` in ``tenant_id``; ``claims`` add or override any claim
    (None drops it)."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "sub": subject,
        "tenant": tenant_id,
        "roles": list(roles),
        "iat": now,
        "exp": now + int(lifetime),
        "jti": uuid.uuid4().hex[:20],
        **claims,
    }
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, "HS256")
