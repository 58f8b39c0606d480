"""Settings: validated once at start, a bad value named by its variable."""

from __future__ import annotations

import pytest

from patient_notify.errors import ConfigError
from patient_notify.settings import Settings
from tests.support.functions import load_module

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


SMS = {
    **GOOD,
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_AUTH_TOKEN": "t",
    "TWILIO_FROM_NUMBER": "+12025550100",
}


class TestSmsSenderSettings:
    @pytest.mark.parametrize(
        ("public_url", "callback"),
        [
            ("https://notify.hospital.org", "https://notify.hospital.org/twilio/status"),
            ("https://hospital.org/notify/", "https://hospital.org/notify/twilio/status"),  # a path prefix kept
            ("", None),  # no webhooks: no receipts asked for (the monitor treats Twilio as receiptless only if told)
        ],
    )
    def test_the_status_callback_is_the_webhooks_route(self, public_url: str, callback: str | None) -> None:
        """Twilio is asked to post receipts to the webhooks function's public /twilio/status."""
        settings_module = load_module("sms-sender", "settings")
        settings = settings_module.SmsSenderSettings.from_cfg({**SMS, "WEBHOOKS_PUBLIC_URL": public_url})
        assert settings.status_callback == callback
