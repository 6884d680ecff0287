"""`tradelane keys rotate` says how many rows it re-encrypted in every table holding sealed credentials —
channels, merchant systems and notification webhook secrets — counted against what changed in the
store: rows without a credential are not counted, and a table it re-encrypted is never left out."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from helpers import make_tenant
from tradelane.cli import build_app
from tradelane.cli.admin import rotation_summary
from tradelane.persistence.merchant_systems import add_merchant_system
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services import notification_settings as destinations
from tradelane.services.channels import create_channel
from tradelane.services.key_check import ENCRYPTED_COLUMNS


@pytest.fixture
def store(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRADELANE_CONFIG", raising=False)
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)


def _seed(engine: Engine, keyring: KeyRing, now: datetime) -> None:
    """Two channels with credentials and one without, one merchant system with credentials and one
    without, a tenant webhook with its secret and a channel's email-only settings (no secret)."""
    tenant, _ = make_tenant(engine, "acme", now)
    with engine.begin() as conn:
        ids = [
            create_channel(
                conn,
                tenant_id=tenant.id,
                name=name,
                connector="test",
                settings={},
                credentials=credentials,
                keyring=keyring,
                now=now,
            ).id
            for name, credentials in (("a", {"api_key": "k-a"}), ("b", {"api_key": "k-b"}), ("c", None))
        ]
        for name, credentials in (("oms", {"secret": "hmac-key"}), ("plain", None)):
            add_merchant_system(
                conn,
                tenant_id=tenant.id,
                name=name,
                kind="http",
                settings={"url": "https://oms.example/orders"},
                credentials=credentials,
                keyring=keyring,
                now=now,
            )
        destinations.configure(
            conn,
            keyring,
            tenant_id=tenant.id,
            channel_id=None,
            webhook_url="https://hooks.example/in",
            webhook_secret="whsec-rotate-me",
            actor="test",
            now=now,
        )
        destinations.configure(
            conn,
            keyring,
            tenant_id=tenant.id,
            channel_id=ids[0],
            emails=["ops@example.com"],
            actor="test",
            now=now,
        )


def _tokens(engine: Engine) -> dict[str, dict[int, tuple[bytes | None, ...]]]:
    with engine.connect() as conn:
        return {
            table.name: {
                row[0]: tuple(None if v is None else bytes(v) for v in row[1:])
                for row in conn.execute(sa.select(table.c.id, *(table.c[c] for c in columns)))
            }
            for table, columns in ENCRYPTED_COLUMNS
        }


def _changed(before, after) -> dict[str, int]:
    return {
        table: sum(1 for row_id, tokens in rows.items() if tokens != after[table][row_id])
        for table, rows in before.items()
    }


def test_rotate_counts_the_rows_it_reencrypted_in_every_table(store, engine, now, monkeypatch):
    old, new = generate_key(), generate_key()
    _seed(engine, KeyRing([old]), now)
    before = _tokens(engine)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", f"{new},{old}")

    said = CliRunner().invoke(build_app(), ["keys", "rotate"])
    assert said.exit_code == 0, said.output
    after = _tokens(engine)
    assert _changed(before, after) == {"channels": 2, "merchant_systems": 1, "notification_settings": 1}
    assert " ".join(said.output.split()) == (
        "re-encrypted credentials of 2 channel(s) and 1 merchant system(s); "
        "webhook secrets of 1 notification setting(s)"
    )
    for rows in after.values():  # every sealed value now opens with the new key alone
        for tokens in rows.values():
            for token in tokens:
                if token is not None:
                    KeyRing([new]).decrypt(token)

    again = CliRunner().invoke(build_app(), ["keys", "rotate", "--json"])  # re-encrypts them again
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == _changed(after, _tokens(engine))


def test_the_summary_names_every_table_even_at_zero_and_unknown_ones_by_name():
    assert rotation_summary({"channels": 0, "merchant_systems": 0, "notification_settings": 0}) == (
        "re-encrypted credentials of 0 channel(s) and 0 merchant system(s); "
        "webhook secrets of 0 notification setting(s)"
    )
    assert rotation_summary({"channels": 3, "vaults": 2}) == (
        "re-encrypted credentials of 3 channel(s); encrypted values of 2 vaults row(s)"
    )
