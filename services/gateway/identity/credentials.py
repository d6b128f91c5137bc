"""Secrets of identity: API keys, session tokens and passwords, and how each is stored.

API keys and session tokens are 32 random bytes: a SHA-256 of them is enough to store and
to look up in constant time per request. Passwords are chosen by people, so they are
hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile).
"""

from __future__ import annotations

import hashlib
import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

KEY_PREFIX = "vk_"
KEY_ID_CHARS = 8
KEY_ID_ALPHABET = string.ascii_lowercase + string.digits
KEY_SECRET_BYTES = 32
MIN_KEY_CHARS = 32
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024

_hasher = PasswordHasher()
# verified against when the user is unknown, so an answer takes as long either way
_UNKNOWN_USER_HASH = _hasher.hash(secrets.token_urlsafe(16))


def digest(secret: str) -> str:
    """How keys and session tokens are stored and looked up: SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh API key and its id: ``vk_<id>_<secret>``; the id is its visible prefix."""
    key_id = "".join(secrets.choice(KEY_ID_ALPHABET) for _ in range(KEY_ID_CHARS))
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(KEY_SECRET_BYTES)}"


def key_id_of_value(value: str) -> str:
    """The id of a key given whole (a bootstrap or agent key): derived from its hash, so
    starting again with the same value finds the same key."""
    return "x" + digest(value)[: KEY_ID_CHARS - 1]


def presented_key_id(value: str) -> str:
    """The id a presented ``vk_`` key claims (not secret), for the audit of a refusal."""
    if value.startswith(KEY_PREFIX) and len(value) > len(KEY_PREFIX) + KEY_ID_CHARS:
        candidate = value[len(KEY_PREFIX) : len(KEY_PREFIX) + KEY_ID_CHARS]
        if all(c in KEY_ID_ALPHABET for c in candidate):
            return candidate
    return ""


def display_prefix(key_id: str) -> str:
    return f"{KEY_PREFIX}{key_id}_"


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(session_token: str) -> str:
    """The CSRF token that goes with a session: bound to it, so it needs no storage, and
    only a page of this origin can read it from its cookie."""
    return hashlib.sha256(b"vigil-csrf:" + session_token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a missing user costs the same time as a wrong one."""
    try:
        return _hasher.verify(password_hash or _UNKNOWN_USER_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_CHARS:
        return f"must be at least {MIN_PASSWORD_CHARS} characters"
    if len(password) > MAX_PASSWORD_CHARS:
        return f"must be at most {MAX_PASSWORD_CHARS} characters"
    return None
