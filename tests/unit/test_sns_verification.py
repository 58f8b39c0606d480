"""SNS signature verification (the webhooks function's sns module) against messages signed as AWS signs them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.sns import SnsStandIn
from tests.support.functions import load_module

sns = load_module("webhooks", "sns")

SIGNER = SnsStandIn()  # one RSA key for the module: generating one takes a while
FORGER = SnsStandIn()  # another key, as an attacker would have
TOPIC = SIGNER.topic_arn
VERSIONS = ["1", "2"]  # SHA1withRSA, SHA256withRSA


@dataclass
class FakeSnsEndpoint:
    """Serves the signer's certificate at its URL and records every URL asked for."""

    certificates: dict[str, bytes] = field(default_factory=lambda: {SIGNER.cert_url: SIGNER.certificate_pem})
    fetched: list[str] = field(default_factory=list)

    async def certificate(self, url: str) -> bytes:
        self.fetched.append(url)
        if url not in self.certificates:
            raise sns.SnsRejected("certificate unavailable (HTTP 404)")
        return self.certificates[url]

    async def confirm_subscription(self, url: str) -> None:
        raise AssertionError("verification never confirms a subscription")


def _verify(message: dict[str, Any], endpoint: FakeSnsEndpoint | None = None, topic: str | None = TOPIC) -> None:
    parsed = sns.SnsMessage.parse(json.dumps(message).encode())
    asyncio.run(sns.verify(parsed, topic, endpoint or FakeSnsEndpoint()))


def _rejection(message: dict[str, Any], endpoint: FakeSnsEndpoint | None = None, topic: str | None = TOPIC) -> str:
    with pytest.raises(sns.SnsRejected) as rejected:
        _verify(message, endpoint, topic)
    return str(rejected.value.reason)


def _set(name: str, value: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda message: {**message, name: value}


class TestGenuineMessages:
    # how SNS builds the message
    @pytest.mark.parametrize("version", VERSIONS)
    @pytest.mark.parametrize(
        "build",
        [
            lambda v: SIGNER.notification('{"eventType": "Delivery"}', version=v),
            lambda v: SIGNER.notification("hello", version=v, subject="SES event"),  # Subject is signed when present
            lambda v: SIGNER.subscription_confirmation(version=v),
            lambda v: SIGNER.unsubscribe_confirmation(version=v),
        ],
        ids=["notification", "with-subject", "subscribe", "unsubscribe"],
    )
    def test_each_message_type_verifies(self, version: str, build: Callable[[str], dict[str, Any]]) -> None:
        """Every SNS message type, signed with version 1 or 2, verifies against the signer's certificate."""
        endpoint = FakeSnsEndpoint()
        _verify(build(version), endpoint)
        assert endpoint.fetched == [SIGNER.cert_url]

    def test_canonical_string_follows_the_documented_order(self) -> None:
        """Notification fields are signed as Name\\nvalue\\n in AWS's order, Subject only when present."""
        message = sns.SnsMessage.parse(json.dumps({
            "Type": "Notification", "MessageId": "m-1", "TopicArn": TOPIC, "Message": "hi",
            "Timestamp": "2026-03-01T09:00:00.000Z", "SignatureVersion": "1", "Signature": "",
            "SigningCertURL": SIGNER.cert_url, "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?x",
        }).encode())  # fmt: skip
        expected = (
            f"Message\nhi\nMessageId\nm-1\nTimestamp\n2026-03-01T09:00:00.000Z\nTopicArn\n{TOPIC}\nType\nNotification\n"
        )
        assert sns.canonical_string(message) == expected.encode()


# (change to a genuine notification, the reason it is refused)
REJECTIONS = [
    pytest.param(_set("Message", '{"eventType": "Delivery"}!'), "signature invalid", id="tampered-message"),
    pytest.param(_set("MessageId", "another-id"), "signature invalid", id="tampered-id"),
    pytest.param(_set("Timestamp", "2020-01-01T00:00:00.000Z"), "signature invalid", id="tampered-timestamp"),
    pytest.param(_set("Subject", "added"), "signature invalid", id="subject-added"),
    pytest.param(_set("Type", "SubscriptionConfirmation"), "a signed field is missing", id="type-changed"),
    pytest.param(_set("Signature", "bm90IGEgc2lnbmF0dXJl"), "signature invalid", id="garbage-signature"),
    pytest.param(_set("Signature", "***"), "unreadable certificate or signature", id="not-base64"),
    pytest.param(_set("SignatureVersion", "3"), "unsupported signature version", id="version-3"),
    pytest.param(_set("TopicArn", "arn:aws:sns:us-east-1:123456789012:other"), "unexpected topic", id="wrong-topic"),
    pytest.param(
        _set("SigningCertURL", "https://evil.example.com/cert.pem"),
        "certificate URL not on an SNS host",
        id="evil-host",
    ),
    pytest.param(
        _set("SigningCertURL", "http://sns.us-east-1.amazonaws.com/c.pem"),
        "certificate URL not on an SNS host",
        id="plain-http",
    ),
    pytest.param(
        _set("SigningCertURL", "https://sns.us-east-1.amazonaws.com.evil.net/c.pem"),
        "certificate URL not on an SNS host",
        id="lookalike-host",
    ),
    pytest.param(
        _set("SigningCertURL", "https://sns.us-east-1.amazonaws.com@evil.net/c.pem"),
        "certificate URL not on an SNS host",
        id="userinfo",
    ),
    pytest.param(
        _set("SigningCertURL", "https://sns.us-east-1.amazonaws.com:8443/c.pem"),
        "certificate URL not on an SNS host",
        id="other-port",
    ),
    pytest.param(
        _set("SigningCertURL", "https://sns.us-east-1.amazonaws.com/c.txt"),
        "certificate URL not on an SNS host",
        id="not-pem",
    ),
    pytest.param(
        _set("SigningCertURL", "https://s3.amazonaws.com/c.pem"),
        "certificate URL not on an SNS host",
        id="other-aws-host",
    ),
    pytest.param(
        _set("SigningCertURL", "https://sns.s3.amazonaws.com/SimpleNotificationService-1.pem"),
        "certificate URL not on an SNS host",
        id="s3-bucket-named-sns",
    ),
    pytest.param(
        _set("SigningCertURL", SIGNER.cert_url + "?v=1"),
        "certificate URL not on an SNS host",
        id="query-string",
    ),
]


class TestForgedMessages:
    @pytest.mark.parametrize("version", VERSIONS)
    @pytest.mark.parametrize(("change", "reason"), REJECTIONS)
    def test_every_forgery_is_rejected(
        self, version: str, change: Callable[[dict[str, Any]], dict[str, Any]], reason: str
    ) -> None:
        """A changed field, a bad signature, a certificate off SNS or another topic: always rejected, with why."""
        endpoint = FakeSnsEndpoint()
        assert _rejection(change(SIGNER.notification("{}", version=version)), endpoint) == reason
        assert set(endpoint.fetched) <= {SIGNER.cert_url}  # nothing off SNS is ever fetched

    @pytest.mark.parametrize("version", VERSIONS)
    def test_another_key_with_the_genuine_certificate_url_is_rejected(self, version: str) -> None:
        """A message signed with any key but the certificate's fails, even pointing at the genuine certificate."""
        forged = {**FORGER.notification("{}", version=version), "SigningCertURL": SIGNER.cert_url}
        assert _rejection(forged) == "signature invalid"

    def test_the_default_port_is_dropped_before_fetching(self) -> None:
        """A SigningCertURL spelling out :443 verifies, fetched (and cached) as the same URL without it."""
        endpoint = FakeSnsEndpoint()
        with_port = SIGNER.cert_url.replace(".amazonaws.com/", ".amazonaws.com:443/")
        _verify({**SIGNER.notification("{}"), "SigningCertURL": with_port}, endpoint)
        assert endpoint.fetched == [SIGNER.cert_url]

    def test_a_certificate_sns_does_not_serve_is_rejected(self) -> None:
        """A well-formed SNS certificate URL that answers nothing usable rejects the message."""
        assert _rejection(FORGER.notification("{}")) == "certificate unavailable (HTTP 404)"

    def test_no_expected_topic_rejects_everything(self) -> None:
        """A site without SES_EVENTS_TOPIC_ARN accepts no SNS message at all."""
        assert _rejection(SIGNER.notification("{}"), topic=None) == "SES_EVENTS_TOPIC_ARN is not set"

    # body -> why it is not an SNS message at all
    @pytest.mark.parametrize(
        "body",
        [
            b"",
            b"not json",
            b"[]",
            b'{"Type": "Notification"}',
            json.dumps({**SIGNER.notification("{}"), "Type": "Other"}).encode(),
            json.dumps({**SIGNER.notification("{}"), "SignatureVersion": 1}).encode(),
        ],
        ids=["empty", "text", "array", "incomplete", "unknown-type", "version-not-a-string"],
    )
    def test_a_body_that_is_not_an_sns_message_is_rejected(self, body: bytes) -> None:
        """Anything that does not parse as an SNS message is rejected before any certificate is fetched."""
        with pytest.raises(sns.SnsRejected):
            sns.SnsMessage.parse(body)

    @settings(max_examples=60, deadline=None)
    @given(
        version=st.sampled_from(VERSIONS),
        name=st.sampled_from(["Message", "MessageId", "Timestamp", "TopicArn", "Subject"]),
        value=st.text(max_size=40),
    )
    def test_any_change_to_a_signed_field_is_rejected(self, version: str, name: str, value: str) -> None:
        """Property: whatever a signed field is changed to, the message is rejected."""
        genuine = SIGNER.notification("{}", version=version, subject="s")
        if genuine[name] != value:
            _rejection({**genuine, name: value})

    @settings(max_examples=60, deadline=None)
    @given(st.binary(max_size=300))
    def test_arbitrary_bytes_are_rejected_not_crashed_on(self, body: bytes) -> None:
        """Property: random bytes are refused as an SnsRejected, never another error."""
        with pytest.raises(sns.SnsRejected):
            sns.SnsMessage.parse(body)


CERTIFICATE = "/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"  # as SNS names them
# host (https, this certificate path) -> an SNS regional host: only sns.<region>.amazonaws.com, .com.cn in China
HOSTS = [
    pytest.param("sns.us-east-1.amazonaws.com", True, id="us-east-1"),
    pytest.param("sns.eu-west-2.amazonaws.com", True, id="eu-west-2"),
    pytest.param("sns.ap-southeast-2.amazonaws.com", True, id="ap-southeast-2"),
    pytest.param("sns.us-gov-west-1.amazonaws.com", True, id="govcloud"),
    pytest.param("sns.cn-north-1.amazonaws.com.cn", True, id="china"),
    pytest.param("sns.s3.amazonaws.com", False, id="s3-bucket"),  # an S3 bucket named "sns", virtual-hosted
    pytest.param("sns.s3-ap-southeast-2.amazonaws.com", False, id="s3-regional-bucket"),
    pytest.param("sns.s3-accelerate.amazonaws.com", False, id="s3-accelerate-bucket"),
    pytest.param("sns.s3-external-1.amazonaws.com", False, id="s3-external-bucket"),
    pytest.param("sns.us-east-1.amazonaws.com.evil.net", False, id="lookalike"),
    pytest.param("sns.amazonaws.com", False, id="no-region"),
    pytest.param("sqs.us-east-1.amazonaws.com", False, id="another-service"),
    pytest.param("evil.sns.us-east-1.amazonaws.com", False, id="subdomain"),
]
# SigningCertURL on a genuine host -> why it is refused
CERTIFICATE_URL_SHAPES = [
    pytest.param("http://sns.us-east-1.amazonaws.com" + CERTIFICATE, id="plain-http"),
    pytest.param("https://sns.us-east-1.amazonaws.com:8443" + CERTIFICATE, id="other-port"),
    pytest.param("https://x@sns.us-east-1.amazonaws.com" + CERTIFICATE, id="userinfo"),
    pytest.param("https://sns.us-east-1.amazonaws.com" + CERTIFICATE + "?a=1", id="query"),
    pytest.param("https://sns.us-east-1.amazonaws.com" + CERTIFICATE + "#a", id="fragment"),
    pytest.param("https://sns.us-east-1.amazonaws.com" + CERTIFICATE + "\n", id="trailing-newline"),
    pytest.param("https://sns.us-east-1.amazonaws.com/cert.pem", id="not-sns-certificate-name"),
    pytest.param("https://sns.us-east-1.amazonaws.com/a" + CERTIFICATE, id="in-a-folder"),
    pytest.param("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-AB.pem", id="upper-case-hex"),
    pytest.param("https://sns.us-east-1.amazonaws.com" + CERTIFICATE + "/../x.pem", id="dot-segments"),
    pytest.param("HTTPS://SNS.US-EAST-1.AMAZONAWS.COM" + CERTIFICATE, id="upper-case"),
]


class TestSnsUrls:
    @pytest.mark.parametrize(("host", "accepted"), HOSTS)
    def test_a_certificate_is_fetched_from_an_sns_regional_host_only(self, host: str, accepted: bool) -> None:
        """A SigningCertURL on anything but sns.<region>.amazonaws.com (an S3 bucket named sns) is never fetched."""
        url = f"https://{host}{CERTIFICATE}"
        assert sns.certificate_url(url) == (url if accepted else None)

    @pytest.mark.parametrize("url", CERTIFICATE_URL_SHAPES)
    def test_a_certificate_url_is_exactly_sns_s_shape(self, url: str) -> None:
        """https, port 443, no credentials, SNS's certificate name, no query or fragment: else never fetched."""
        assert sns.certificate_url(url) is None

    @pytest.mark.parametrize(("host", "accepted"), HOSTS)
    def test_a_subscribe_url_is_visited_on_an_sns_regional_host_only(self, host: str, accepted: bool) -> None:
        """SubscribeURL and UnsubscribeURL share the host rule: an S3 bucket named sns is not SNS."""
        assert sns.is_sns_url(f"https://{host}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=ab12") is accepted

    # SubscribeURL -> what makes it unfit to visit
    @pytest.mark.parametrize(
        "url",
        [
            "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",  # plain http
            "https://sns.us-east-1.amazonaws.com:8443/?Action=ConfirmSubscription",  # another port
            "https://x@sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",  # credentials
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription#x",  # a fragment
            "https://sns.us-east-1.amazonaws.com/?Action=Confirm Subscription",  # a space
            "https://sns.us-east-1.amazonaws.com\\@evil.net/?Action=ConfirmSubscription",  # parsers disagree
            "https://sns.us-east-1.amazonaws.com",  # no path at all
            "",
        ],
    )
    def test_a_subscribe_url_off_the_plain_shape_is_not_visited(self, url: str) -> None:
        """A SubscribeURL is https on an SNS host, port 443, no credentials or fragment, printable ASCII only."""
        assert not sns.is_sns_url(url)

    def test_the_stand_in_urls_are_sns_shaped(self) -> None:
        """The local SNS stand-in signs with URLs the rule accepts: the demo and tests verify real signatures."""
        confirmation = SIGNER.subscription_confirmation()
        assert sns.certificate_url(SIGNER.cert_url) == SIGNER.cert_url
        assert sns.is_sns_url(confirmation["SubscribeURL"])
        assert sns.is_sns_url(SIGNER.notification("{}")["UnsubscribeURL"])
