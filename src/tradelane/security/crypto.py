"""Channel credentials at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation.

The key ring's first key encrypts; every key decrypts. ``rotate`` re-encrypts a token under the first
key, so an operator can add a new key in front, run ``tradelane keys rotate`` and then drop the old one.
Plaintext credentials never appear in logs, reprs or API responses.
"""

from __future__ import annotations

import json
import os
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
    """The embedded default: a key file next to the SQLite store, created 0600 on first use."""
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    return key
