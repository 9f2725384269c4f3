"""One identity resolver for every transport: a bearer credential goes to the verifier
its shape names.

    sk_...            an API key              policy.api_keys.ApiKeyIdentity
    xxxxx.yyyyy.zzzz  a signed token (JWT)    policy.jwt_tokens.JwtVerifier, when configured
    anything else     refused

No credentials at all is the anonymous actor. Every refusal, whichever verifier made it,
is the same UNAUTHENTICATED "Invalid credentials".
"""

from __future__ import annotations

import re

from policy.api_keys import INVALID_CREDENTIALS, ApiKeyIdentity
from policy.jwt_tokens import JwtVerifier
from registry.actor import ANONYMOUS, Actor
from registry.errors import CATALOGUE

API_KEY_PREFIX = "sk_"
#: Three base64url segments (header, payload, signature), as a compact JWS has.
JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


def looks_like_jwt(credentials: str) -> bool:
    return JWT_SHAPE.fullmatch(credentials) is not None


class BearerIdentity:
    """Routes bearer credentials to the API key resolver or the JWT verifier (None: signed
    tokens are not accepted)."""

    def __init__(self, api_keys: ApiKeyIdentity, tokens: JwtVerifier | None = None) -> None:
        self.api_keys = api_keys
        self.tokens = tokens

    async def resolve(self, credentials: str | None) -> Actor:
        if credentials is None:
            return ANONYMOUS
        if credentials.startswith(API_KEY_PREFIX):
            return await self.api_keys.resolve(credentials)
        if self.tokens is not None and looks_like_jwt(credentials):
            return await self.tokens.resolve(credentials)
        raise CATALOGUE.UNAUTHENTICATED(INVALID_CREDENTIALS)
