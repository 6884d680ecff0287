from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradelane.config import load_settings
from tradelane.logging import configure_logging, get_logger
from tradelane.security.crypto import CredentialError, KeyRing, generate_key, load_or_create_key_file
from tradelane.security.tokens import hash_token, new_token


def test_settings_from_toml_then_env_overrides(tmp_path, monkeypatch):
    config = tmp_path / "tradelane.toml"
    config.write_text('database_url = "sqlite:///from-toml.db"\nworker_batch_size = 7\n')
    monkeypatch.setenv("TRADELANE_CONFIG", str(config))
    monkeypatch.delenv("TRADELANE_DATABASE_URL", raising=False)
    monkeypatch.delenv("TRADELANE_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path}/from-toml.db"  # made absolute at load
    assert settings.data_dir == tmp_path
    assert settings.worker_batch_size == 7
    monkeypatch.setenv("TRADELANE_WORKER_BATCH_SIZE", "3")
    assert load_settings().worker_batch_size == 3


def test_default_database_is_sqlite_under_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("TRADELANE_DATABASE_URL", raising=False)
    monkeypatch.delenv("TRADELANE_CONFIG", raising=False)
    monkeypatch.delenv("TRADELANE_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path}/var/tradelane.db"
    assert settings.key_file() == tmp_path / "var" / "secret.key"
    monkeypatch.setenv("TRADELANE_DATA_DIR", "/srv/tradelane")
    assert load_settings().resolved_database_url() == "sqlite:////srv/tradelane/tradelane.db"
    monkeypatch.setenv("TRADELANE_DATABASE_URL", "postgresql://db.example/hub")
    assert load_settings().key_file() == Path("/srv/tradelane/secret.key")  # explicit data dir wins
    monkeypatch.delenv("TRADELANE_DATA_DIR")
    assert load_settings().key_file() is None  # PostgreSQL: no per-host default


def test_key_file_creation_keeps_the_first_key_when_two_processes_race(tmp_path, monkeypatch):
    path = tmp_path / "var" / "secret.key"
    import tradelane.security.crypto as crypto

    real_link = crypto.os.link

    def link_after_someone_else(src, dst):  # the other process wins between our check and our link
        if not Path(dst).exists():
            Path(dst).write_text("OTHER-PROCESS-KEY\n")
        return real_link(src, dst)

    monkeypatch.setattr(crypto.os, "link", link_after_someone_else)
    assert load_or_create_key_file(path) == "OTHER-PROCESS-KEY"
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary file left


def test_keyring_rotation_and_wrong_key():
    old, new = generate_key(), generate_key()
    token = KeyRing([old]).encrypt({"api_key": "k"})
    ring = KeyRing([new, old])
    rotated = ring.rotate(token)
    assert KeyRing([new]).decrypt(rotated) == {"api_key": "k"}
    with pytest.raises(CredentialError):
        KeyRing([generate_key()]).decrypt(token)
    with pytest.raises(ValueError):
        KeyRing(["not-a-key"])
    assert old not in repr(ring) and new not in repr(ring)


def test_key_file_created_private_and_reused(tmp_path):
    path = tmp_path / "var" / "secret.key"
    first = load_or_create_key_file(path)
    assert load_or_create_key_file(path) == first
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_tokens_are_random_and_hashed():
    a, b = new_token(), new_token()
    assert a != b and hash_token(a) != hash_token(b) and len(hash_token(a)) == 64


def test_json_logs_redact_secrets(capsys):
    configure_logging("INFO", json_output=True)
    get_logger("t").info("channel.added", api_key="s3cret", channel="shop")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["api_key"] == "***" and record["channel"] == "shop" and record["event"] == "channel.added"
