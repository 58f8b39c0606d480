"""Settings: validated once at start, a bad value named by its variable."""

from __future__ import annotations

import pytest

from patient_notify.errors import ConfigError
from patient_notify.settings import Settings

GOOD = {"DATABASE_URL": "postgresql://u@db/pn", "BROKER_URL": "http://broker-ingress/"}


class TestSettings:
    def test_good_config_is_typed_and_frozen(self) -> None:
        """Valid variables give a frozen settings object with defaults filled in."""
        settings = Settings.from_cfg(GOOD)
        assert settings.log_level == "INFO" and settings.db_pool_max == 10
        with pytest.raises(ValueError, match="frozen"):
            settings.db_pool_max = 3  # type: ignore[misc]

    @pytest.mark.parametrize(
        ("cfg", "variable"),
        [
            ({"BROKER_URL": "http://b/"}, "DATABASE_URL"),  # missing
            ({**GOOD, "DATABASE_URL": "mysql://x"}, "DATABASE_URL"),  # wrong scheme
            ({**GOOD, "BROKER_URL": "not a url"}, "BROKER_URL"),
            ({**GOOD, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
            ({**GOOD, "DB_POOL_MAX": "many"}, "DB_POOL_MAX"),
        ],
    )
    def test_bad_config_names_the_variable(self, cfg: dict[str, str], variable: str) -> None:
        """The error carries the environment variable's name, as written in func.yaml."""
        with pytest.raises(ConfigError) as caught:
            Settings.from_cfg(cfg)
        assert caught.value.variable == variable

    def test_empty_values_mean_unset(self) -> None:
        """A ConfigMap key present with an empty value falls back to the default."""
        assert Settings.from_cfg({**GOOD, "LOG_LEVEL": ""}).log_level == "INFO"

    def test_secrets_never_appear_in_the_message(self) -> None:
        """The error names the variable but does not echo the rejected value."""
        with pytest.raises(ConfigError) as caught:
            Settings.from_cfg({**GOOD, "DATABASE_URL": "mysql://admin:hunter2@db/x"})
        assert "hunter2" not in str(caught.value)
