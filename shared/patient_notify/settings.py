"""Typed settings, validated once from ``start(cfg)``; nothing else reads the environment.

Each function declares a frozen subclass of ``Settings``; fields are named after the
environment variables (``DATABASE_URL`` → ``database_url``). A bad or missing value raises
``ConfigError`` naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Self

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, PostgresDsn, ValidationError

from patient_notify.errors import ConfigError

__all__ = ["Settings", "database_url_from"]


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=str.upper)

    database_url: PostgresDsn
    broker_url: AnyHttpUrl
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    db_pool_max: int = 10
    publish_concurrency: int = 32

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, str]) -> Self:
        """Validate the environment mapping func-python hands ``start``."""
        known = {name.upper() for name in cls.model_fields}
        try:
            # An empty value means unset: ConfigMaps carry optional keys with "" as their value.
            return cls.model_validate({k: v for k, v in cfg.items() if k in known and v != ""})
        except ValidationError as exc:
            first = exc.errors()[0]
            variable = str(first["loc"][0]) if first["loc"] else cls.__name__
            raise ConfigError(variable, first["msg"]) from exc


def database_url_from(cfg: Mapping[str, str]) -> str:
    """The one setting the migration command needs."""
    url = cfg.get("DATABASE_URL", "")
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("DATABASE_URL", "must be a postgresql:// URL")
    return url
