"""Webhook secrets in the Standard Webhooks format (`whsec_` + base64 of 24 to 64 random
bytes): anything else is a configuration problem naming the command that makes one, the
command makes one, and the key it stands for is the one the receivers' own library uses."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from gateway.cli import main as cli_main
from gateway.config.webhook_secret import new_webhook_secret, webhook_key
from gateway.errors import ConfigError
from tests.helpers import parse_settings

ACCOUNT = {"provider": "ourvoice", "base_url": "https://x", "api_key": "k" * 10}
FIX = "generate one: balance-gateway webhooks secret"


def whsec(size: int) -> str:
    return "whsec_" + base64.b64encode(bytes(range(size))).decode()


def webhooks(secret: str) -> dict[str, Any]:
    """A configuration with one webhook, its secret in the environment (`S`)."""
    return {
        "server": {"profile": "development"},
        "accounts": {"ov": ACCOUNT},
        "webhooks": {"ops": {"url": "https://example.com/hooks", "secret": "env:S"}},
    }


@pytest.mark.parametrize("size", [24, 32, 64])
def test_a_standard_webhooks_secret_is_accepted_and_its_key_is_the_decoded_bytes(
    size: int,
) -> None:
    settings = parse_settings(webhooks(whsec(size)), {"S": whsec(size)})
    (endpoint,) = settings.webhooks
    assert webhook_key(endpoint.secret.reveal()) == bytes(range(size))


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("0123456789abcdef0123456789abcdef", "does not start with whsec_"),  # was accepted
        ("whsec-test-0123456789abcdef", "does not start with whsec_"),
        ("whsec_not base64!", "not base64"),
        ("whsec_" + "A" * 5, "not base64"),
        (whsec(23), "23 bytes"),
        (whsec(65), "65 bytes"),
        ("whsec_", "0 bytes"),
    ],
)
def test_any_other_secret_is_a_problem_naming_the_command_that_makes_one(
    secret: str, says: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_settings(webhooks(secret), {"S": secret})
    (problem,) = raised.value.problems
    assert problem.location == "webhooks.ops.secret"
    assert "Standard Webhooks" in problem.message and says in problem.message
    assert problem.fix == FIX
    if secret != "whsec_":
        assert secret.removeprefix("whsec_") not in str(raised.value)  # never shown
    with pytest.raises(ValueError, match=says):
        webhook_key(secret)


def test_unpadded_base64_is_accepted_as_the_libraries_accept_it() -> None:
    padded = whsec(32)
    assert padded.endswith("=")
    assert webhook_key(padded.rstrip("=")) == webhook_key(padded) == bytes(range(32))


def test_the_command_prints_a_new_secret_of_32_random_bytes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    printed = []
    for _ in range(2):
        assert cli_main(["webhooks", "secret"]) == 0
        printed.append(capsys.readouterr().out)
    first, second = printed
    assert first.endswith("\n") and first.count("\n") == 1  # alone: `$(… webhooks secret)`
    assert len(webhook_key(first.strip())) == 32
    assert first != second
    assert parse_settings(webhooks(first.strip()), {"S": first.strip()}).webhooks


def test_the_key_is_the_one_the_standardwebhooks_library_signs_with() -> None:
    """What a receiver configured with the same `whsec_…` computes: HMAC-SHA256 with the
    decoded key of `<id>.<timestamp>.<body>`, base64, as `v1,<signature>`."""
    secret = new_webhook_secret()
    at = datetime(2026, 11, 26, 9, 41, tzinfo=UTC)
    body = b'{"type": "balance.warning"}'
    message = f"evt_1.{int(at.timestamp())}.".encode() + body
    ours = base64.b64encode(hmac.new(webhook_key(secret), message, hashlib.sha256).digest())
    assert Webhook(secret).sign("evt_1", at, body.decode()) == f"v1,{ours.decode()}"


def test_check_config_names_the_fix_and_never_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = tmp_path / "hook-secret"
    secret_file.write_text("an-old-style-secret-of-32-chars!\n")
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[server]\nprofile = "development"\n'
        '[accounts.ov]\nprovider = "ourvoice"\nbase_url = "https://x"\napi_key = "kkkkkkkkkk"\n'
        '[webhooks.ops]\nurl = "https://example.com/hooks"\nsecret = "file:hook-secret"\n'
    )
    assert cli_main(["check-config", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "webhooks.ops.secret" in err and FIX in err
    assert "an-old-style" not in err
    secret_file.write_text(new_webhook_secret() + "\n")
    assert cli_main(["check-config", "--config", str(config)]) == 0
