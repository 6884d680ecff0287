"""Channel credentials at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation.

The key ring's first key encrypts; every key decrypts. ``rotate`` re-encrypts a token under the first
key, so an operator can add a new key in front, run ``tradelane keys rotate`` and then drop the old one.
Plaintext credentials never appear in logs, reprs or API responses.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class CredentialError(Exception):
    """Credentials could not be decrypted (wrong or missing key)."""


class KeyRing:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one secret key is required")
        try:
            self._fernets = [Fernet(k.encode() if isinstance(k, str) else k) for k in keys]
        except (ValueError, TypeError) as exc:
            raise ValueError("invalid secret key: expected url-safe base64 of 32 bytes (Fernet)") from exc
        self._multi = MultiFernet(self._fernets)

    def __repr__(self) -> str:
        return f"KeyRing(<{len(self._fernets)} keys>)"

    def encrypt(self, secret: dict[str, Any]) -> bytes:
        return self._multi.encrypt(json.dumps(secret, sort_keys=True).encode("utf-8"))

    def decrypt(self, token: bytes) -> dict[str, Any]:
        try:
            data = self._multi.decrypt(token)
        except InvalidToken:
            raise CredentialError("credentials cannot be decrypted with the configured keys") from None
        value = json.loads(data)
        if not isinstance(value, dict):
            raise CredentialError("credentials are not a JSON object")
        return value

    def rotate(self, token: bytes) -> bytes:
        try:
            return self._multi.rotate(token)
        except InvalidToken:
            raise CredentialError("credentials cannot be decrypted with the configured keys") from None


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def load_or_create_key_file(path: Path) -> str:
    """The key in ``path``, creating the file (0600, parent folders 0700) with a new key if it is missing.

    Creation is atomic: the key is written to a private temporary file and hard-linked into place,
    so two processes starting at once end up with the same key and nobody reads a half-written file.
    Callers decide whether creating a key is allowed (see ``services.key_check``).
    """
    if path.exists():
        return _read_key(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".secret-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(generate_key() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
    finally:
        os.unlink(tmp)
    return _read_key(path)


def _read_key(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise ValueError("the key file is empty")
    return key
