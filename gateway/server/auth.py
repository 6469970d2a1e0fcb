"""Who is calling: API keys (stored as SHA-256) or JWTs → a `Principal`.

A principal carries scopes and the accounts it may see; an account it may not see must
behave exactly like one that does not exist. Every bad credential — missing, unknown,
revoked, altered, expired, wrongly signed — is answered identically (`Unauthenticated`
with one fixed message); the reason is only logged. Under the development profile a
request *without* credentials gets the demo principal (logged at start-up); a request with
credentials is always checked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt

from gateway.access import DEVELOPMENT, SCOPES, Principal
from gateway.clock import Clock
from gateway.config.security import ClientConfig, JwtConfig
from gateway.errors import Unauthenticated

log = logging.getLogger("gateway.server.auth")

BAD_CREDENTIALS = "Missing or invalid credentials."


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class JwtVerifier:
    def __init__(self, config: JwtConfig, clock: Clock) -> None:
        self.config = config
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._url_client: jwt.PyJWKClient | None = None
        if config.jwks_file:
            jwks = jwt.PyJWKSet.from_dict(json.loads(Path(config.jwks_file).read_text()))
            self._keys = {k.key_id or "": k for k in jwks.keys}
        elif config.jwks_url:
            self._url_client = jwt.PyJWKClient(config.jwks_url, cache_keys=True, timeout=5)

    async def _key_for(self, token: str, algorithm: str) -> Any:
        if algorithm.startswith("HS"):
            assert self.config.secret is not None
            return self.config.secret.reveal()
        if self._url_client is not None:  # blocking urllib: keep it off the event loop
            return (await asyncio.to_thread(self._url_client.get_signing_key_from_jwt, token)).key
        kid = jwt.get_unverified_header(token).get("kid") or ""
        key = self._keys.get(kid) or (
            next(iter(self._keys.values())) if len(self._keys) == 1 else None
        )
        if key is None:
            raise jwt.InvalidTokenError("no key for this kid")
        return key.key

    async def verify(self, token: str) -> Principal:
        algorithm = jwt.get_unverified_header(token).get("alg")
        # Only the configured algorithms: "none" and HS-with-a-public-key never get here.
        if algorithm not in self.config.algorithms:
            raise jwt.InvalidAlgorithmError(f"algorithm {algorithm!r} not allowed")
        claims = jwt.decode(
            token,
            await self._key_for(token, algorithm),
            algorithms=[algorithm],
            audience=self.config.audience,
            issuer=self.config.issuer,
            # Times are checked below against the gateway's clock, not the wall's.
            options={
                "require": ["exp", "iss", "aud"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
        self._check_times(claims)
        return Principal(
            name=f"jwt:{claims.get(self.config.name_claim, '?')}",
            scopes=frozenset(_listed(claims.get(self.config.scopes_claim))) & frozenset(SCOPES),
            accounts=_accounts(claims.get(self.config.accounts_claim)),
        )

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now, leeway = self._clock(), self.config.leeway_seconds
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp + leeway <= now:
            raise jwt.ExpiredSignatureError("expired")
        if not isinstance(nbf, int | float) or nbf - leeway > now:
            raise jwt.ImmatureSignatureError("not yet valid")


def _listed(value: object) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _accounts(value: object) -> frozenset[str] | None:
    listed = _listed(value)
    return None if "*" in listed else frozenset(listed)


def credential_of(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = headers.get("x-api-key", "").strip()
    return api_key or None


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class Authenticator:
    def __init__(
        self,
        clients: Mapping[str, ClientConfig],
        jwt_verifier: JwtVerifier | None,
        *,
        development: bool,
    ) -> None:
        self._by_hash = {  # a configured client's principal, built once
            c.key_sha256.lower(): Principal(
                c.name, c.scopes, c.accounts, c.rate_limit, trusted_documents=c.trusted_documents
            )
            for c in clients.values()
        }
        self._jwt = jwt_verifier
        self.development = development

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        token = credential_of(headers)
        if token is None:
            if self.development:
                return DEVELOPMENT
            raise self._refuse("no credentials")
        if self._jwt is not None and looks_like_jwt(token):
            try:
                return await self._jwt.verify(token)
            except (jwt.PyJWTError, ValueError, KeyError, OSError) as exc:
                raise self._refuse(f"JWT refused: {type(exc).__name__}") from None
        principal = self._by_hash.get(key_hash(token))
        if principal is None:
            raise self._refuse("unknown API key")
        return principal

    def without_io(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller, when `authenticate` would accept it without awaiting anything: a
        configured API key, or none in development. None for anything else — a JWT, a
        refusal — which `authenticate` judges (and words, and logs)."""
        token = credential_of(headers)
        if token is None:
            return DEVELOPMENT if self.development else None
        if self._jwt is not None and looks_like_jwt(token):
            return None
        return self._by_hash.get(key_hash(token))

    @staticmethod
    def _refuse(reason: str) -> Unauthenticated:
        log.info("authentication refused: %s", reason)
        return Unauthenticated(BAD_CREDENTIALS)
