"""Configuration from environment variables (``TRADELANE_*``) and an optional TOML file.

Precedence, highest first: explicit keyword arguments, environment variables, the TOML file named by
``TRADELANE_CONFIG`` (or ``./tradelane.toml`` when it exists), then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
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

    data_dir: Path = DEFAULT_DATA_DIR
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

    @field_validator("database_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to an SQLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tradelane.db').as_posix()}"

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


def load_settings(**overrides: Any) -> Settings:
    """Read settings now (never at import time)."""
    return Settings(**overrides)
