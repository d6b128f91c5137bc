"""Secrets at rest: channel secrets are stored (in events, read models, exports) only
encrypted, as ``enc:v1:<Fernet token>``, and decrypted only where they are used.

The keys come from ``VIGIL_SECRET_KEY`` (comma-separated Fernet keys, newest first) or
from ``<data dir>/secret.key`` (one key per line, newest first), created with mode 0600
on first use. The newest key encrypts; every listed key decrypts (MultiFernet), so a key
can be rotated in (``vigil secrets rotate``) and the old one retired once nothing
current is encrypted with it. Lose the key and the stored secrets are lost with it:
back it up with the data dir, or keep it outside (``VIGIL_SECRET_KEY``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

ENCRYPTED_PREFIX = "enc:v1:"
KEY_ENV = "VIGIL_SECRET_KEY"
KEY_FILE = "secret.key"
MASK = "(set)"  # what the API shows for a secret that is set; sent back, it keeps the secret


class SecretKeyError(ValueError):
    """The key material is missing, malformed, or does not open a stored secret."""


def is_encrypted(value: str) -> bool:
    return value.startswith(ENCRYPTED_PREFIX)


def mask(value: str) -> str:
    """How a secret is shown: never its text, only whether one is set."""
    return MASK if value else ""


def new_key() -> str:
    return Fernet.generate_key().decode()


def _parse_keys(text: str, where: str) -> list[str]:
    keys = [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]
    if not keys:
        raise SecretKeyError(f"{where}: holds no key")
    for index, key in enumerate(keys):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise SecretKeyError(
                f"{where}: key {index + 1} is not a Fernet key (32 url-safe base64 bytes)"
            ) from None
    return keys


def key_file(data_dir: Path) -> Path:
    return Path(data_dir) / KEY_FILE


def write_key_file(path: Path, keys: list[str]) -> None:
    """Replace the key file atomically, mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, ("\n".join(keys) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _create_key_file(path: Path) -> None:
    """Write a first key unless another process got there first (several services start
    at once): the complete file appears under its name in one step, or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (new_key() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def load_keys(data_dir: Path, env: Mapping[str, str] | None = None) -> tuple[list[str], str]:
    """The keys, newest first, and where they came from (the variable or the file)."""
    environ = os.environ if env is None else env
    configured = environ.get(KEY_ENV, "").strip()
    if configured:
        return _parse_keys(configured, KEY_ENV), KEY_ENV
    path = key_file(data_dir)
    if not path.exists():
        _create_key_file(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SecretKeyError(f"{path}: cannot read: {exc.strerror}") from exc
    return _parse_keys(text, str(path)), str(path)


class SecretBox:
    """Encrypts with the newest key, decrypts with any; never logs what it handles."""

    def __init__(self, keys: list[str], origin: str = "keys"):
        if not keys:
            raise SecretKeyError(f"{origin}: holds no key")
        self.keys = list(keys)
        self.origin = origin
        self._fernet = MultiFernet([Fernet(key.encode()) for key in self.keys])
        self._fingerprint_key = hashlib.sha256(b"vigil-fingerprint\0" + keys[0].encode()).digest()

    @classmethod
    def load(cls, data_dir: Path, env: Mapping[str, str] | None = None) -> SecretBox:
        keys, origin = load_keys(data_dir, env)
        return cls(keys, origin)

    def encrypt(self, plain: str) -> str:
        """The stored form of a secret; an empty secret stays empty, a stored one as it is."""
        if not plain or is_encrypted(plain):
            return plain
        return ENCRYPTED_PREFIX + self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, stored: str, what: str = "secret") -> str:
        """The clear text of a stored secret (a clear one is returned as it is)."""
        if not is_encrypted(stored):
            return stored
        try:
            return self._fernet.decrypt(stored[len(ENCRYPTED_PREFIX) :].encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                f"{what}: cannot be decrypted with the keys from {self.origin} "
                "(encrypted with a key that is not listed)"
            ) from None

    def reencrypt(self, stored: str, what: str = "secret") -> str:
        """The same secret encrypted with the newest key."""
        return self.encrypt(self.decrypt(stored, what))

    def encrypted_with_newest(self, stored: str) -> bool:
        if not is_encrypted(stored):
            return not stored
        try:
            Fernet(self.keys[0].encode()).decrypt(stored[len(ENCRYPTED_PREFIX) :].encode())
        except InvalidToken:
            return False
        return True

    def fingerprint(self, data: bytes) -> str:
        """A keyed digest: tells whether contents changed without revealing a secret in them."""
        return hmac.new(self._fingerprint_key, data, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"SecretBox({len(self.keys)} keys from {self.origin})"
