"""Settings: every problem at once with location and fix; secrets by reference, never shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main as cli_main
from gateway.config.secret import Secret
from gateway.errors import ConfigError
from tests.helpers import DEMO_CONFIG, load_settings, parse_settings

GOOD_ACCOUNT = {
    "provider": "muda",
    "base_url": "https://api.muda.tech",
    "api_key": "env:MUDA_KEY",
    "secret_key": "file:{secret_file}",
}


def problems(data: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as raised:
        parse_settings(data, env or {})
    return {p.location: f"{p.message} | {p.fix}" for p in raised.value.problems}


def test_the_demo_config_loads_five_accounts_over_four_providers() -> None:
    settings = load_settings(str(DEMO_CONFIG), env={})
    assert list(settings.accounts) == [
        "ourvoice-sn",
        "ourvoice-ci",
        "magma",
        "muda-ug",
        "paymob-eg",
    ]
    assert len({a.provider for a in settings.accounts.values()}) == 4
    assert settings.server.development


def test_profile_is_production_unless_set(tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text("from-file\n")
    account = {**GOOD_ACCOUNT, "secret_key": f"file:{secret}"}
    client = {"key_sha256": "a" * 64, "scopes": ["balances:read"], "accounts": ["*"]}
    settings = parse_settings(
        {
            "accounts": {"muda-ug": account},
            "clients": {"dash": client},
            "server": {"cursor_secret": "env:CURSOR"},
        },
        {"MUDA_KEY": "from-env", "CURSOR": "c" * 32},
    )
    assert settings.server.profile == "production"
    muda = settings.accounts["muda-ug"]
    assert muda.secret("api_key") == "from-env"
    assert muda.secret("secret_key") == "from-file"  # trailing newline stripped
    assert "from-env" not in repr(settings) and "from-file" not in repr(settings)


def test_every_problem_is_reported_at_once_with_location_and_fix() -> None:
    found = problems(
        {
            "server": {"profile": "staging", "colour": "blue", "request_deadline_seconds": -1},
            "cache": {"url": "memcached://x", "fresh_seconds": -1},
            "upstream": {"max_attempts": 0, "retries": 2},
            "accounts": {
                "Bad Id": {
                    "provider": "muda",
                    "base_url": "https://x",
                    "api_key": "env:A",
                    "secret_key": "env:B",
                },
                "mg": {
                    "provider": "magma_onepay",
                    "base_url": "ftp://x",
                    "private_key": "inline",
                    "currency": "XOF",
                    "api_key": "env:NOPE",
                },
                "ov": {
                    "provider": "ourvoice",
                    "base_url": "https://x",
                    "currency": "ZZZ",
                    "timezone": "Mars/Olympus",
                    "country": "XX",
                    "timeout_seconds": "10",
                },
                "pm": {"provider": "paymob", "base_url": "https://x"},
            },
        },
        env={"A": "a", "B": "b"},
    )
    expected = {
        "clients",
        "server.cursor_secret",
        "cache.url",
        "cache.fresh_seconds",
        "upstream.max_attempts",
        "upstream.retries",
        "server.colour",
        "server.profile",
        "server.request_deadline_seconds",
        "accounts.Bad Id",
        "accounts.mg.base_url",
        "accounts.mg.private_key",
        "accounts.mg.currency",
        "accounts.mg.api_key",
        "accounts.ov.currency",
        "accounts.ov.timezone",
        "accounts.ov.country",
        "accounts.ov.timeout_seconds",
        "accounts.ov.api_key",
        "accounts.pm.provider",
    }
    assert set(found) == expected
    assert "development" in found["accounts.mg.private_key"]  # inline secret in production
    assert "ourvoice, magma_onepay, muda, paymob_bills" in found["accounts.pm.provider"]
    assert all(" | " in text and not text.endswith(" | ") for text in found.values())


def test_missing_env_and_unreadable_file_secrets_are_named() -> None:
    found = problems({"accounts": {"m": {**GOOD_ACCOUNT, "secret_key": "file:/no/such/file"}}})
    assert "MUDA_KEY" in found["accounts.m.api_key"]
    assert "accounts.m.secret_key" in found


def test_no_accounts_is_a_problem() -> None:
    assert "accounts" in problems({"server": {"profile": "development"}})


def test_secrets_never_print() -> None:
    secret = Secret("s3cr3t")
    assert "s3cr3t" not in f"{secret} {secret!r} {[secret]}"
    assert secret.reveal() == "s3cr3t"
    assert secret.digest() != Secret("other").digest()


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return str(path)


def test_check_config_exits_zero_on_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["check-config", "--config", str(DEMO_CONFIG)]) == 0
    assert "configuration OK" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_broken_config_names_the_problem_and_exits_non_zero(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        '[accounts.x]\nprovider = "muda"\nbase_url = "https://x"\napi_key = "inline-secret-value"\n',
    )
    assert cli_main([command, "--config", path]) == 2
    err = capsys.readouterr().err
    assert "accounts.x.secret_key" in err and "accounts.x.api_key" in err
    assert "inline-secret-value" not in err


@pytest.mark.parametrize("text", ["[server\nprofile=1", "\xff\xfe"])
def test_unparseable_toml_is_reported(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["check-config", "--config", write(tmp_path, text)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_config_path_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    assert cli_main(["check-config"]) == 2
    assert "GATEWAY_CONFIG" in capsys.readouterr().err
    monkeypatch.setenv("GATEWAY_CONFIG", str(DEMO_CONFIG))
    assert cli_main(["check-config"]) == 0


@pytest.mark.parametrize("value", [0, -5, "lots", True, "NaN"])
def test_a_bad_top_up_maximum_is_named(value: object) -> None:
    account = {
        "provider": "ourvoice",
        "base_url": "https://x",
        "api_key": "k" * 10,
        "topup_max_amount": value,
    }
    found = problems({"server": {"profile": "development"}, "accounts": {"ov": account}})
    assert "accounts.ov.topup_max_amount" in found


def test_top_up_keys_only_where_top_ups_exist() -> None:
    account = {
        "provider": "magma_onepay",
        "base_url": "https://x",
        "private_key": "k" * 10,
        "topup_status": "completed",
    }
    found = problems({"server": {"profile": "development"}, "accounts": {"mg": account}})
    assert "accounts.mg.topup_status" in found


def test_the_production_example_checks_out_once_its_secrets_exist(tmp_path: Path) -> None:
    example = DEMO_CONFIG.parent / "production.example.toml"
    secret_file = tmp_path / "muda"
    secret_file.write_text("muda-secret\n")
    text = example.read_text().replace("/run/secrets/muda_secret_key", str(secret_file))
    env = {
        name: f"value-of-{name}"
        for name in (
            "GATEWAY_CURSOR_SECRET",
            "REDIS_PASSWORD",
            "PG_PASSWORD",
            "OURVOICE_SN_KEY",
            "MAGMA_PRIVATE_KEY",
            "MAGMA_SECRET_KEY",
            "MUDA_API_KEY",
            "PAYMOB_PUBLIC_KEY",
            "PAYMOB_SECRET_KEY",
        )
    }
    settings = parse_settings(__import__("tomllib").loads(text), env)
    assert settings.server.profile == "production"
    assert set(settings.security.clients) == {"finance-dashboard", "billing-service", "prometheus"}
    with pytest.raises(ConfigError) as raised:  # without its secrets it names each one
        parse_settings(__import__("tomllib").loads(text), {})
    assert len(raised.value.problems) == len(env)


# --- paths, the simulator's port, clients' rate limits ---------------------------------


def test_relative_paths_are_relative_to_the_config_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "muda.secret").write_text("from-a-relative-file\n")
    (folder / "gateway.toml").write_text(
        '[server]\nprofile = "development"\n'
        '[idempotency]\nurl = "sqlite:///journal/topups.db"\n'
        '[accounts.muda-ug]\nprovider = "muda"\nbase_url = "https://api.muda.tech"\n'
        'api_key = "inline-dev-key"\nsecret_key = "file:muda.secret"\n'
    )
    monkeypatch.chdir(tmp_path)  # anywhere but the config's folder
    settings = load_settings("etc/gateway.toml", env={})
    assert settings.idempotency.url == f"sqlite:///{folder / 'journal' / 'topups.db'}"
    assert settings.accounts["muda-ug"].secret("secret_key") == "from-a-relative-file"
    data = {
        "server": {"profile": "development"},
        "idempotency": {"url": "sqlite:////var/x.db"},
        "accounts": {"muda-ug": {**GOOD_ACCOUNT, "secret_key": "inline"}},
    }
    absolute = parse_settings(data, {"MUDA_KEY": "k"}, folder)
    assert absolute.idempotency.url == "sqlite:////var/x.db"


def test_the_demo_accounts_follow_the_simulator_port() -> None:
    default = load_settings(str(DEMO_CONFIG), env={})
    moved = load_settings(str(DEMO_CONFIG), env={}, simulator_port=8002)
    assert default.accounts["magma"].base_url == "http://127.0.0.1:8001/magma"
    assert moved.accounts["magma"].base_url == "http://127.0.0.1:8002/magma"
    assert moved.accounts["muda-ug"].base_url == "http://127.0.0.1:8002/muda/v1"


def test_the_simulator_is_refused_in_production() -> None:
    account = {"provider": "ourvoice", "base_url": "simulator:/ourvoice", "api_key": "env:K"}
    found = problems({"accounts": {"ov": account}}, {"K": "k"})
    assert "development profile only" in found["accounts.ov.base_url"]


def test_client_names_and_their_own_rate_limits() -> None:
    from gateway.access import RateLimit

    client = {"key_sha256": "a" * 64, "scopes": ["balances:read"], "accounts": ["*"]}
    settings = parse_settings(
        {
            "server": {"profile": "development"},
            "accounts": {"muda-ug": {**GOOD_ACCOUNT, "secret_key": "inline"}},
            "rate_limit": {"requests_per_second": 10, "burst": 30},
            "clients": {
                "frontend": {**client, "requests_per_second": 500},
                "script": client,
            },
        },
        {"MUDA_KEY": "k"},
    )
    assert settings.security.rate_limit == RateLimit(10, 30)
    # a client's own rate; the burst it did not set comes from [rate_limit]
    assert settings.security.clients["frontend"].rate_limit == RateLimit(500, 30)
    assert settings.security.clients["script"].rate_limit is None  # the default applies
    assert RateLimit() == RateLimit(50, 200)  # the default docs/configuration.md justifies
    found = problems(
        {
            "accounts": {"muda-ug": GOOD_ACCOUNT},
            "clients": {"Ops Team": client, "ok": {**client, "burst": 0}},
        },
        {"MUDA_KEY": "k"},
    )
    assert "lowercase" in found["clients.Ops Team"]
    assert "clients.ok.burst" in found


def test_export_schema_check_outside_the_repository_says_the_file_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli_main(["export-schema", "--check"]) == 1
    err = capsys.readouterr().err
    assert "schema.graphql does not exist" in err and "--output" in err


def test_server_limits_parse_with_their_defaults_and_are_checked() -> None:
    account = {**GOOD_ACCOUNT, "secret_key": "inline"}
    base = {"server": {"profile": "development"}, "accounts": {"muda-ug": account}}
    server = parse_settings(base, {"MUDA_KEY": "k"}).server
    assert (server.max_concurrent_requests, server.max_queued_requests) == (256, 256)
    assert (server.max_header_bytes, server.header_timeout_seconds) == (32 * 1024, 10.0)
    assert (server.body_timeout_seconds, server.keep_alive_seconds) == (30.0, 5.0)
    no_queue = {**base, "server": {"profile": "development", "max_queued_requests": 0}}
    assert parse_settings(no_queue, {"MUDA_KEY": "k"}).server.max_queued_requests == 0
    assert (server.admission, server.min_concurrent_requests) == ("adaptive", 8)
    assert (server.admission_target_delay_seconds, server.queue_timeout_seconds) == (0.020, 0.0)
    assert (server.reserved_for_mutations, server.write_timeout_seconds) == (0.1, 10.0)
    assert (server.stream_buffer_bytes, server.release_memory_after_connections) == (65536, 64)
    never = {**base, "server": {"profile": "development", "release_memory_after_connections": 0}}
    assert parse_settings(never, {"MUDA_KEY": "k"}).server.release_memory_after_connections == 0
    bad = {
        "profile": "development",
        "max_concurrent_requests": 0,
        "max_queued_requests": -1,
        "max_header_bytes": "big",
        "header_timeout_seconds": 0,
        "admission": "sometimes",
        "reserved_for_mutations": 0.9,
        "admission_target_delay_seconds": 0,
        "write_timeout_seconds": -1,
        "release_memory_after_connections": 0.0,
    }
    found = problems({**base, "server": bad}, {"MUDA_KEY": "k"})
    assert {
        "server.max_concurrent_requests",
        "server.max_queued_requests",
        "server.max_header_bytes",
        "server.header_timeout_seconds",
        "server.admission",
        "server.reserved_for_mutations",
        "server.admission_target_delay_seconds",
        "server.write_timeout_seconds",
        "server.release_memory_after_connections",
    } <= set(found)
    for zero in (0.0, False):  # 0 means something for these two: only the whole number 0
        for name in ("max_queued_requests", "release_memory_after_connections"):
            refused = {**base, "server": {"profile": "development", name: zero}}
            assert f"server.{name}" in problems(refused, {"MUDA_KEY": "k"})
    queueless = {**base, "server": {"profile": "development", "max_queued_requests": 0}}
    assert parse_settings(queueless, {"MUDA_KEY": "k"}).server.max_queued_requests == 0
    crossed = {"profile": "development", "min_concurrent_requests": 300}
    assert "server.min_concurrent_requests" in problems(
        {**base, "server": crossed}, {"MUDA_KEY": "k"}
    )


def test_the_jwt_section_parses_and_refuses_mixed_algorithms(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    account = {**GOOD_ACCOUNT, "secret_key": "inline"}
    base = {"server": {"profile": "development"}, "accounts": {"muda-ug": account}}
    hs = {"algorithms": ["HS256"], "issuer": "https://idp", "audience": "bg", "secret": "env:S"}
    parsed = parse_settings({**base, "jwt": hs}, {"MUDA_KEY": "k", "S": "s" * 32}, tmp_path)
    jwt = parsed.security.jwt
    assert jwt is not None and jwt.algorithms == ("HS256",) and jwt.secret is not None
    assert (jwt.issuer, jwt.audience, jwt.leeway_seconds) == ("https://idp", "bg", 30)
    rs = {
        "algorithms": ["RS256", "ES256"],
        "issuer": "i",
        "audience": "a",
        "jwks_file": "jwks.json",
    }
    parsed = parse_settings({**base, "jwt": rs}, {"MUDA_KEY": "k"}, tmp_path)
    assert parsed.security.jwt is not None
    assert parsed.security.jwt.jwks_file == str(jwks)  # relative to the config's folder
    mixed = {**hs, "algorithms": ["HS256", "RS256"], "jwks_file": "jwks.json"}
    found = problems({**base, "jwt": mixed}, {"MUDA_KEY": "k", "S": "s" * 32})
    assert "cannot be mixed" in found["jwt.algorithms"]
    found = problems({**base, "jwt": {"algorithms": ["none"]}}, {"MUDA_KEY": "k"})
    assert {"jwt.algorithms", "jwt"} <= set(found)


def test_the_journal_password_is_a_secret_reference_and_only_for_postgresql() -> None:
    account = {**GOOD_ACCOUNT, "secret_key": "inline"}
    base = {"server": {"profile": "development"}, "accounts": {"muda-ug": account}}
    env = {"MUDA_KEY": "k", "PG_PASSWORD": "journal-password"}
    journal = {"url": "postgresql://gateway@db/gateway", "password": "env:PG_PASSWORD"}
    parsed = parse_settings({**base, "idempotency": journal}, env).idempotency
    assert parsed.password is not None and parsed.password.reveal() == "journal-password"
    assert (parsed.pool_size, "journal-password" in repr(parsed)) == (10, False)
    sqlite = {"url": "sqlite:///j.db", "password": "env:PG_PASSWORD", "pool_size": 0}
    assert {"idempotency.password", "idempotency.pool_size"} <= set(
        problems({**base, "idempotency": sqlite}, env)
    )


def test_redis_credentials_are_references_never_in_the_url_and_tls_files_need_rediss(
    tmp_path: Path,
) -> None:
    account = {**GOOD_ACCOUNT, "secret_key": "inline"}
    base = {"server": {"profile": "development"}, "accounts": {"muda-ug": account}}
    env = {"MUDA_KEY": "k", "REDIS_PASSWORD": "redis-password"}
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
    cache = {
        "url": "rediss://redis:6380/0",
        "username": "balance-gateway",
        "password": "env:REDIS_PASSWORD",
        "ca_file": "ca.pem",
        "cert_file": "client.pem",
        "key_file": "client.key",
    }
    parsed = parse_settings({**base, "cache": cache}, env, tmp_path).cache
    assert parsed.password is not None and parsed.password.reveal() == "redis-password"
    assert "redis-password" not in repr(parsed)
    assert parsed.username == "balance-gateway"
    assert parsed.tls.ca_file == tmp_path / "ca.pem"  # relative to the config's folder
    assert (parsed.tls.cert_file, parsed.tls.key_file) == (
        tmp_path / "client.pem",
        tmp_path / "client.key",
    )
    in_url = {"url": "redis://gateway:redis-password@redis:6379/0"}
    found = problems({**base, "cache": in_url}, env)
    assert "ConfigMap" in found["cache.url"] and "env:REDIS_PASSWORD" in found["cache.url"]
    plain = {"url": "redis://redis:6379/0", "ca_file": str(tmp_path / "ca.pem")}
    assert "rediss://" in problems({**base, "cache": plain}, env)["cache.ca_file"]
    half = {"url": "rediss://redis:6380/0", "cert_file": str(tmp_path / "client.pem")}
    assert "both" in problems({**base, "cache": half}, env)["cache.cert_file"]
    missing = {"url": "rediss://redis:6380/0", "ca_file": str(tmp_path / "nope.pem")}
    assert "no readable file" in problems({**base, "cache": missing}, env)["cache.ca_file"]
    memory = {"url": "memory://", "password": "env:REDIS_PASSWORD"}
    assert "no credentials" in problems({**base, "cache": memory}, env)["cache.password"]
    production = {**base, "server": {"profile": "production"}}
    inline = {"url": "redis://redis:6379/0", "password": "hunter2"}
    assert "inline" in problems({**production, "cache": inline}, env)["cache.password"]


def test_the_journal_takes_libpqs_sslmode_and_tls_files_only_for_postgresql(
    tmp_path: Path,
) -> None:
    account = {**GOOD_ACCOUNT, "secret_key": "inline"}
    base = {"server": {"profile": "development"}, "accounts": {"muda-ug": account}}
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    journal = {"url": "postgresql://gateway@db/gateway", "sslmode": "verify-full"}
    parsed = parse_settings(
        {**base, "idempotency": {**journal, "ca_file": "ca.pem"}}, {"MUDA_KEY": "k"}, tmp_path
    ).idempotency
    assert (parsed.sslmode, parsed.tls.ca_file) == ("verify-full", tmp_path / "ca.pem")
    wrong = problems({**base, "idempotency": {**journal, "sslmode": "on"}}, {"MUDA_KEY": "k"})
    assert "verify-full" in wrong["idempotency.sslmode"]
    sqlite = {"url": "sqlite:///j.db", "sslmode": "require"}
    assert (
        "no TLS"
        in problems({**base, "idempotency": sqlite}, {"MUDA_KEY": "k"})["idempotency.sslmode"]
    )


@pytest.mark.parametrize(
    ("section", "url", "said"),
    [
        ("cache", "redis://127.0.0.1:6379/0?password=pw-in-query", "no query parameters"),
        ("cache", "redis://h/0?username=x&password=pw-in-query", "no query parameters"),
        ("cache", "rediss://:pw-in-userinfo@h:6380/0", "ConfigMap"),
        ("cache", "unix://:pw-in-userinfo@/run/redis.sock", "scheme 'unix'"),
        ("idempotency", "postgresql://gw:pw-in-userinfo@db/gateway", "ConfigMap"),
        ("idempotency", "postgresql://gw:Hunter%zzpw-bad@db/gateway", "percent-encoding"),
        ("idempotency", "postgresql://db/gateway?sslmod=require", 'unknown parameter "sslmod"'),
        ("idempotency", "host=db password=pw-in-dsn", "scheme '(none)'"),
    ],
)
def test_a_url_with_a_password_or_that_cannot_be_read_is_refused_and_never_echoed(
    section: str, url: str, said: str
) -> None:
    account = {**GOOD_ACCOUNT, "secret_key": "inline"}
    base = {"server": {"profile": "production"}, "accounts": {"muda-ug": account}}
    found = problems({**base, section: {"url": url}}, {"MUDA_KEY": "k"})
    message = found[f"{section}.url"]
    assert said in message
    assert "pw-" not in " ".join(found.values())  # no part of the secret, anywhere


def test_tls_files_for_a_sqlite_journal_are_named_as_they_were_given(tmp_path: Path) -> None:
    account = {**GOOD_ACCOUNT, "secret_key": "inline"}
    base = {"server": {"profile": "development"}, "accounts": {"muda-ug": account}}
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    sqlite = {"url": "sqlite:///j.db", "ca_file": str(tmp_path / "ca.pem")}
    found = problems({**base, "idempotency": sqlite}, {"MUDA_KEY": "k"})
    assert "no TLS" in found["idempotency.ca_file"] and "idempotency.sslmode" not in found
