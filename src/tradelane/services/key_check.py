"""Which key ring a process may start with: never a fresh key over data encrypted with another one.

Every process (CLI command, ``serve``, ``worker``, the demo) builds its key ring through
:func:`open_keyring` before doing anything else. The rules:

* keys come from ``TRADELANE_SECRET_KEYS`` or, when that is empty, from the key file in the data
  directory (``<data_dir>/secret.key``);
* a key file is created only when the store holds no encrypted credential at all — with encrypted
  data present and no key, the process refuses to start instead of generating one;
* when the store holds encrypted credentials and none of a sample of them (the most recent few of
  every encrypted column) decrypts with the configured keys, the process refuses to start with a
  message that names where keys were looked for and how to configure them. A sample that decrypts
  only in part (keys dropped before ``keys rotate`` finished its job, say) is reported by
  :class:`KeyCheck` so the caller can log the undecryptable rows; the process still starts, so the
  operator can repair or remove them, and jobs touching them fail with the row named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tradelane.domain.errors import TradelaneError
from tradelane.persistence.tables import channels, merchant_systems, notification_settings
from tradelane.security.crypto import CredentialError, KeyRing, load_or_create_key_file

#: Every column holding Fernet tokens made with the configured key ring.
ENCRYPTED_COLUMNS: tuple[tuple[sa.Table, tuple[str, ...]], ...] = (
    (channels, ("credentials", "staging_credentials")),
    (merchant_systems, ("credentials",)),
    (notification_settings, ("webhook_secret",)),
)
#: How many of the most recent tokens of each encrypted column are tried at start-up.
SAMPLE_PER_COLUMN = 5

_HOW_TO = (
    "Set TRADELANE_SECRET_KEYS to the key(s) this store was encrypted with (comma separated; the first "
    "encrypts, all decrypt), or point TRADELANE_DATA_DIR at the directory holding its secret.key."
)


class KeyConfigurationError(TradelaneError):
    """The process cannot get a key ring that is safe to use with this store; it must not start."""


@dataclass(frozen=True)
class EncryptedValue:
    table: str
    row_id: int
    column: str
    token: bytes

    @property
    def label(self) -> str:
        return f"{self.table}.{self.column} (id {self.row_id})"


@dataclass(frozen=True)
class KeyCheck:
    """The outcome of trying a key ring on the sample."""

    sampled: int
    undecryptable: list[EncryptedValue] = field(default_factory=list)

    @property
    def none_decrypt(self) -> bool:
        return self.sampled > 0 and len(self.undecryptable) == self.sampled


def sample_encrypted(conn: Connection, per_column: int = SAMPLE_PER_COLUMN) -> list[EncryptedValue]:
    """The most recent ``per_column`` non-null tokens of every encrypted column (tables that do not
    exist yet — a store before its first ``db upgrade`` — contribute nothing)."""
    inspector = sa.inspect(conn)
    sample: list[EncryptedValue] = []
    for table, columns in ENCRYPTED_COLUMNS:
        if not inspector.has_table(table.name):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in columns:
            if column not in present:
                continue
            col = table.c[column]
            rows = conn.execute(
                sa.select(table.c.id, col)
                .where(col.is_not(None))
                .order_by(table.c.id.desc())
                .limit(per_column)
            ).all()
            sample.extend(EncryptedValue(table.name, row[0], column, bytes(row[1])) for row in rows)
    return sample


def check_keyring(keyring: KeyRing, sample: list[EncryptedValue]) -> KeyCheck:
    """Try ``keyring`` on every sampled token (pure apart from the cryptography)."""
    failed: list[EncryptedValue] = []
    for value in sample:
        try:
            keyring.decrypt(value.token)
        except CredentialError:
            failed.append(value)
    return KeyCheck(sampled=len(sample), undecryptable=failed)


@dataclass(frozen=True)
class KeySource:
    """Where the key ring came from, for logs and messages (never the key itself)."""

    description: str
    created_key_file: bool = False


def open_keyring(
    engine: Engine, *, configured_keys: list[str], key_file: Path | None
) -> tuple[KeyRing, KeySource, KeyCheck]:
    """The key ring for a process on ``engine``'s store, or :class:`KeyConfigurationError`.

    ``configured_keys`` (``TRADELANE_SECRET_KEYS``) win; otherwise ``key_file`` is read, and created
    (0600) only when the store holds no encrypted credential. Raises when the store's credentials
    cannot be decrypted by any configured key, naming where keys were looked for.
    """
    with engine.connect() as conn:
        sample = sample_encrypted(conn)
    looked = _looked_in(configured_keys, key_file)
    created = False
    if configured_keys:
        try:
            keyring = KeyRing(configured_keys)
        except ValueError as exc:
            raise KeyConfigurationError(f"TRADELANE_SECRET_KEYS: {exc}. {_HOW_TO}") from None
        source = "TRADELANE_SECRET_KEYS"
    elif key_file is None:
        raise KeyConfigurationError(
            "no encryption key configured: a non-SQLite store has no default data directory. Set "
            "TRADELANE_SECRET_KEYS (the same value on every host; `tradelane keys generate` prints a new "
            "key) or TRADELANE_DATA_DIR (a directory for secret.key)."
        )
    else:
        if not key_file.exists() and sample:
            raise KeyConfigurationError(
                f"the store holds encrypted credentials ({_labels(sample)}) but no key was found "
                f"({looked}); refusing to create a new key, which could not decrypt them. {_HOW_TO}"
            )
        try:
            created = not key_file.exists()
            key = load_or_create_key_file(key_file)
            keyring = KeyRing([key])
        except ValueError as exc:
            raise KeyConfigurationError(f"key file {key_file}: {exc}. {_HOW_TO}") from None
        except OSError as exc:
            raise KeyConfigurationError(f"key file {key_file} cannot be read or created: {exc}") from None
        source = f"key file {key_file}" + (" (created)" if created else "")
    check = check_keyring(keyring, sample)
    if check.none_decrypt:
        raise KeyConfigurationError(
            f"the configured keys ({looked}) decrypt none of the {check.sampled} most recent encrypted "
            f"credentials in the store ({_labels(check.undecryptable)}); refusing to "
            f"start, every job using them would fail. {_HOW_TO}"
        )
    return keyring, KeySource(source, created_key_file=created), check


def _looked_in(configured_keys: list[str], key_file: Path | None) -> str:
    env = (
        f"TRADELANE_SECRET_KEYS ({len(configured_keys)} key(s))"
        if configured_keys
        else "TRADELANE_SECRET_KEYS (not set)"
    )
    if configured_keys or key_file is None:
        return env
    state = "present" if key_file.exists() else "missing"
    return f"{env}, then the key file {key_file} ({state})"


def _labels(values: list[EncryptedValue], limit: int = 5) -> str:
    shown = ", ".join(v.label for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")
