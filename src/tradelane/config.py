"""Configuration from environment variables (``TRADELANE_*``) and an optional TOML file.

Precedence, highest first: explicit keyword arguments, environment variables, the TOML file named by
``TRADELANE_CONFIG`` (or ``./tradelane.toml`` when it exists), then the defaults below.

Paths are resolved once, when the settings are loaded, so nothing later depends on the current
directory: a relative ``data_dir`` or a relative SQLite URL (``sqlite:///var/tradelane.db``) is made
absolute against the directory the process started in, and the result is what every component uses
(``bootstrap.build`` logs it). The *data directory* holds the key file (``secret.key``):

* ``TRADELANE_DATA_DIR`` when set;
* otherwise, for an SQLite store, the directory of the SQLite file — so the key always sits beside the
  data it protects, whichever directory a worker or a command is started from;
* otherwise (PostgreSQL) there is no default: set ``TRADELANE_SECRET_KEYS`` (recommended, the same
  value on every host) or ``TRADELANE_DATA_DIR`` — a per-host default would give each host its own key.

With neither ``TRADELANE_DATABASE_URL`` nor ``TRADELANE_DATA_DIR`` set, the store is
``./var/tradelane.db`` of the start directory (made absolute and logged).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATA_DIR = Path("var")


def _toml_path() -> Path | None:
    explicit = os.environ.get("TRADELANE_CONFIG")
    if explicit:
        return Path(explicit)
    local = Path("tradelane.toml")
    return local if local.exists() else None


class Settings(BaseSettings):
    """All runtime settings. Secrets (keys) are never logged or echoed."""

    model_config = SettingsConfigDict(env_prefix="TRADELANE_", extra="ignore")

    #: Where the key file lives (absolute after loading); ``None`` only for a non-SQLite store without
    #: an explicit setting. See the module docstring.
    data_dir: Path | None = None
    database_url: str = ""
    #: Fernet keys, comma separated; the first encrypts, all decrypt (for rotation).
    secret_keys: str = Field(default="", repr=False)
    log_level: str = "INFO"
    log_json: bool = True
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    worker_batch_size: int = 10
    worker_lease_seconds: float = 60.0
    worker_poll_seconds: float = 1.0
    job_max_attempts: int = 8
    job_backoff_base_seconds: float = 2.0
    job_backoff_cap_seconds: float = 900.0
    #: Extra job handlers: comma-separated ``package.module:function`` callables taking a JobRegistry.
    plugins: str = ""
    #: The SMTP server notifications are sent through (``smtp_host`` empty: emails cannot be sent and
    #: each one fails with that reason). ``smtp_ssl``: TLS from the first byte (port 465);
    #: ``smtp_starttls``: upgrade a plain connection (port 587); at most one of them.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = Field(default="", repr=False)
    smtp_from: str = ""
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout: float = 10.0

    @field_validator("database_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @model_validator(mode="after")
    def _smtp_security(self) -> Settings:
        if self.smtp_ssl and self.smtp_starttls:
            raise ValueError("set at most one of TRADELANE_SMTP_SSL and TRADELANE_SMTP_STARTTLS")
        if self.smtp_timeout <= 0:
            raise ValueError("TRADELANE_SMTP_TIMEOUT must be a positive number of seconds")
        return self

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        """Make every path absolute now (see the module docstring); ``data_dir`` follows the store."""
        if self.data_dir is not None:
            self.data_dir = self.data_dir.expanduser().absolute()
        if not self.database_url:
            directory = self.data_dir or DEFAULT_DATA_DIR.absolute()
            self.database_url = f"sqlite:///{(directory / 'tradelane.db').as_posix()}"
        sqlite_file = _sqlite_file(self.database_url)
        if sqlite_file is not None:
            self.database_url = (
                sa.engine.make_url(self.database_url)
                .set(database=sqlite_file.as_posix())
                .render_as_string(hide_password=False)
            )
            if self.data_dir is None:
                self.data_dir = sqlite_file.parent
        return self

    def resolved_database_url(self) -> str:
        """The database URL; an SQLite file path in it is absolute (resolved at load)."""
        return self.database_url

    def key_file(self) -> Path | None:
        """The key file used when ``TRADELANE_SECRET_KEYS`` is empty (``None``: no data directory)."""
        return self.data_dir / "secret.key" if self.data_dir is not None else None

    def plugin_list(self) -> list[str]:
        return [p.strip() for p in self.plugins.split(",") if p.strip()]

    def key_list(self) -> list[str]:
        return [k.strip() for k in self.secret_keys.split(",") if k.strip()]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _toml_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def _sqlite_file(url: str) -> Path | None:
    """The absolute path of an SQLite file URL; ``None`` for other backends and in-memory SQLite."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ValueError(f"database_url {url!r} is not a database URL: {exc}") from None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser().absolute()


def load_settings(**overrides: Any) -> Settings:
    """Read settings now (never at import time)."""
    return Settings(**overrides)
