"""Settings: validated once at start, a bad value named by its variable."""

from __future__ import annotations

import pytest

from patient_notify.errors import ConfigError
from patient_notify.settings import AwsRegion, Settings, ZoneName
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
        assert "hunter2" not in str(caught.value) and "hunter2" not in str(caught.value.__cause__)


class SiteSettings(Settings):
    site_zone: ZoneName = "UTC"
    site_region: AwsRegion | None = None


class TestZonesAndRegions:
    @pytest.mark.parametrize(
        ("cfg", "accepted"),
        [
            ({"SITE_ZONE": "Europe/London"}, True),
            ({"SITE_ZONE": "America/Argentina/Buenos_Aires"}, True),  # three levels deep
            ({"SITE_ZONE": "Mars/Olympus"}, False),  # unknown: zoneinfo raises a KeyError, which pydantic lets through
            ({"SITE_ZONE": "Europe"}, False),  # a folder of zones: zoneinfo raises IsADirectoryError
            ({"SITE_ZONE": "../etc/passwd"}, False),  # outside the zone database: a ValueError
            ({"SITE_ZONE": "europe/london"}, False),  # names are case-sensitive
            ({"SITE_REGION": "eu-west-1"}, True),
            ({"SITE_REGION": "us-gov-west-1"}, True),  # GovCloud
            ({"SITE_REGION": "us-isob-east-1"}, True),  # an isolated partition
            ({"SITE_REGION": "eu west 1"}, False),  # botocore would refuse it only when building its client
            ({"SITE_REGION": "EU-WEST-1"}, False),
            ({"SITE_REGION": "eu-west"}, False),  # no number
        ],
    )
    def test_a_zone_or_region_is_checked_at_start(self, cfg: dict[str, str], accepted: bool) -> None:
        """A zone must be in the IANA database and a region shaped like AWS's; a bad one is named."""
        if accepted:
            SiteSettings.from_cfg({**GOOD, **cfg})
            return
        with pytest.raises(ConfigError) as caught:
            SiteSettings.from_cfg({**GOOD, **cfg})
        assert caught.value.variable == next(iter(cfg))


class TestMonitorSettings:
    @pytest.mark.parametrize(
        "url",
        [
            "amqp://guest:guest@127.0.0.1:5672/%2F",
            "amqps://notify:s3cret@rabbit.internal/notify?heartbeat=30",  # TLS, a vhost, a pika option
        ],
    )
    def test_an_amqp_url_is_accepted(self, url: str) -> None:
        """RABBITMQ_URL takes what pika takes, over amqp:// or amqps://."""
        settings = load_module("monitor", "settings").MonitorSettings.from_cfg({**GOOD, "RABBITMQ_URL": url})
        assert settings.rabbitmq_url.get_secret_value() == url

    @pytest.mark.parametrize(
        "url",
        [
            "amqp://notify:hunter2@rabbit:notaport/",  # pika fails on the port
            "amqp://notify:hunter2@rabbit/?heartbeat=soon",  # ... or an option
            "http://notify:hunter2@rabbit/",  # pika would take it as amqp://
            "amqp://notify:hunter2@/",  # no host: pika would try localhost
            "CHANGE-ME-or-empty",  # the example Secret's placeholder: an IndexError deep in pika
        ],
    )
    def test_a_bad_amqp_url_is_named_without_its_credentials(self, url: str) -> None:
        """A RABBITMQ_URL pika cannot use fails naming the variable, never quoting the URL."""
        with pytest.raises(ConfigError) as caught:
            load_module("monitor", "settings").MonitorSettings.from_cfg({**GOOD, "RABBITMQ_URL": url})
        assert caught.value.variable == "RABBITMQ_URL"
        assert "hunter2" not in str(caught.value) and "rabbit" not in str(caught.value)
        assert "hunter2" not in str(caught.value.__cause__)  # nor does the pydantic error chained under it


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
