"""Typed settings, validated once from ``start(cfg)``; nothing else reads the environment.

Each function declares a frozen subclass of ``Settings``; fields are named after the
environment variables (``DATABASE_URL`` → ``database_url``). A bad or missing value raises
``ConfigError`` naming the variable. So a validator raises ``ValueError`` (pydantic names the
field) or ``ConfigError``; anything else escapes pydantic, and ``start`` fails naming only its type.
``ZoneName`` and ``AwsRegion`` check what would otherwise fail later, or as a ``KeyError``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, PostgresDsn, ValidationError

from patient_notify.domain.models import is_zone
from patient_notify.errors import ConfigError

__all__ = ["AwsRegion", "Settings", "ZoneName", "database_url_from"]

# eu-west-1, us-gov-west-1, us-isob-east-1: a typo fails at start, not when boto3 builds its client.
AWS_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d+$")


def _zone_name(value: str) -> str:
    if not is_zone(value):
        raise ValueError("not an IANA time zone name, like Europe/London")
    return value


def _aws_region(value: str) -> str:
    if not AWS_REGION.fullmatch(value):
        raise ValueError("not an AWS region name, like eu-west-1")
    return value


ZoneName = Annotated[str, AfterValidator(_zone_name)]
AwsRegion = Annotated[str, AfterValidator(_aws_region)]


class Settings(BaseModel):
    # hide_input_in_errors: the ValidationError chained under a ConfigError must not quote a secret.
    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=str.upper, hide_input_in_errors=True)

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
