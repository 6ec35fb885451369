"""HS256 JSON Web Tokens (RFC 7519) with the standard library: enough for this API's bearer
tokens (claims `sub`, `iat`, `exp`), nothing more. A project needing key rotation, asymmetric
keys or refresh tokens would use PyJWT or djangorestframework-simplejwt instead."""

import base64
import hashlib
import hmac
import json
import time

from django.conf import settings

_HEADER = {"alg": "HS256", "typ": "JWT"}


class InvalidToken(Exception):
    """The token is malformed, not signed with our key, or expired."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise InvalidToken("malformed token") from exc


def _sign(signing_input: bytes) -> bytes:
    key = settings.JWT_SIGNING_KEY.encode()
    return hmac.new(key, signing_input, hashlib.sha256).digest()


def issue_token(user, lifetime=None) -> str:
    """A signed token naming `user` (by primary key), valid for `lifetime` seconds."""
    now = int(time.time())
    lifetime = settings.JWT_LIFETIME_SECONDS if lifetime is None else lifetime
    claims = {"sub": str(user.pk), "iat": now, "exp": now + lifetime}
    segments = [
        _b64encode(json.dumps(_HEADER, separators=(",", ":")).encode()),
        _b64encode(json.dumps(claims, separators=(",", ":")).encode()),
    ]
    signing_input = ".".join(segments).encode("ascii")
    return ".".join([*segments, _b64encode(_sign(signing_input))])


def verify_token(token: str) -> dict:
    """The claims of a valid token; raises InvalidToken otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("malformed token")
    header_b64, claims_b64, signature_b64 = parts
    expected = _sign(f"{header_b64}.{claims_b64}".encode("ascii"))
    if not hmac.compare_digest(expected, _b64decode(signature_b64)):
        raise InvalidToken("bad signature")
    try:
        header = json.loads(_b64decode(header_b64))
        claims = json.loads(_b64decode(claims_b64))
    except ValueError as exc:
        raise InvalidToken("malformed token") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise InvalidToken("unsupported algorithm")
    if not isinstance(claims, dict) or "sub" not in claims:
        raise InvalidToken("no subject")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= time.time():
        raise InvalidToken("token expired")
    return claims
