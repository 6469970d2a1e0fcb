"""Who may ask what: API keys, JWTs, scopes, visible accounts, rate limits, /metrics."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.access import RateLimit
from gateway.config.secret import Secret
from gateway.config.security import JwtConfig
from gateway.simulator import Simulator
from tests.helpers import (
    FULL_KEY,
    FakeClock,
    GatewayClient,
    client,
    demo_settings,
    production,
    running_gateway,
    with_section,
)

KEY_A, KEY_B, READER_NO_SCOPE, METRICS = (
    "bgw_client-a-key-000000000000000000",
    "bgw_client-b-key-111111111111111111",
    "bgw_transactions-only-2222222222222",
    "bgw_metrics-reader-33333333333333333",
)
CLIENTS = (
    client(
        "full",
        FULL_KEY,
        ("balances:read", "transactions:read", "topup:write", "metrics:read"),
        None,
    ),
    client("client-a", KEY_A, ("balances:read",), ("magma", "ourvoice-sn")),
    client("client-b", KEY_B, ("balances:read",), ("muda-ug",)),
    client("no-balances", READER_NO_SCOPE, ("transactions:read",), None),
    client("metrics", METRICS, ("metrics:read",), ()),
)
BALANCES = """query($ids: [ID!]) { balances(accountIds: $ids) { complete
  totals { currency kind } results { __typename ... on AccountBalance { account { id } } } } }"""
ISSUER, AUDIENCE = "https://idp.test", "balance-gateway"
HS_SECRET = "hs256-shared-secret-for-tests-0123456789"


@pytest.fixture
async def gw(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> AsyncIterator[GatewayClient]:
    async with running_gateway(
        production(demo_settings(), *CLIENTS), sim_transport, clock
    ) as gateway:
        yield gateway


async def refused_alike(gw: GatewayClient, headers_list: list[dict[str, str]]) -> None:
    answers = []
    for headers in headers_list:
        gw.as_key(None)
        response = await gw.http.post("/graphql", json={"query": BALANCES}, headers=headers)
        answers.append((response.status_code, response.text))
    expected = {
        "errors": [
            {
                "message": "Missing or invalid credentials.",
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ]
    }
    assert {(status, json.dumps(json.loads(text))) for status, text in answers} == {
        (401, json.dumps(expected))
    }


async def test_bad_api_keys_are_all_answered_alike(gw: GatewayClient, sim: Simulator) -> None:
    altered = KEY_A[:-1] + ("0" if KEY_A[-1] != "0" else "1")
    await refused_alike(
        gw,
        [
            {},
            {"authorization": "Bearer wrong"},
            {"authorization": "Bearer bgw_revoked-key-no-longer-configured"},
            {"authorization": f"Bearer {altered}"},
            {"x-api-key": "wrong"},
            {"authorization": "Basic dXNlcjpwYXNz"},
            {"authorization": "Bearer "},
        ],
    )
    assert sum(sim.state.calls.values()) == 0


async def test_a_key_is_accepted_as_bearer_or_x_api_key(gw: GatewayClient) -> None:
    gw.as_key(None)
    for headers in ({"authorization": f"Bearer {KEY_A}"}, {"x-api-key": KEY_A}):
        response = await gw.http.post("/graphql", json={"query": BALANCES}, headers=headers)
        assert response.status_code == 200
        assert [r["account"]["id"] for r in response.json()["data"]["balances"]["results"]] == [
            "ourvoice-sn",
            "magma",
        ]


async def test_another_clients_account_is_exactly_like_no_account(gw: GatewayClient) -> None:
    gw.as_key(KEY_A)
    theirs = await gw.post(BALANCES, {"ids": ["muda-ug"]})
    nobodys = await gw.post(BALANCES, {"ids": ["zz-nope"]})
    assert theirs.text.replace("muda-ug", "ID") == nobodys.text.replace("zz-nope", "ID")
    lookups = await gw.post(
        '{ a: account(id: "muda-ug") { id } b: account(id: "zz-nope") { id } accounts { id } }'
    )
    assert lookups.json()["data"] == {
        "a": None,
        "b": None,
        "accounts": [{"id": "ourvoice-sn"}, {"id": "magma"}],
    }


async def test_totals_only_count_visible_accounts(gw: GatewayClient) -> None:
    gw.as_key(KEY_B)
    report = (await gw.post(BALANCES)).json()["data"]["balances"]
    assert {t["currency"] for t in report["totals"]} == {"UGX", "KES", "TZS"}  # Muda's only


async def test_a_missing_scope_is_forbidden(gw: GatewayClient, sim: Simulator) -> None:
    gw.as_key(READER_NO_SCOPE)
    response = await gw.post(BALANCES)
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["FORBIDDEN"]
    nested = await gw.post('{ account(id: "magma") { id balance { __typename } } }')
    assert nested.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert sum(sim.state.calls.values()) == 0


async def test_metrics_need_the_metrics_scope(gw: GatewayClient) -> None:
    unauthenticated = await gw.as_key(None).http.get("/metrics")
    forbidden = await gw.as_key(KEY_A).http.get("/metrics")
    allowed = await gw.as_key(METRICS).http.get("/metrics")
    assert (unauthenticated.status_code, forbidden.status_code, allowed.status_code) == (
        401,
        403,
        200,
    )
    assert forbidden.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "gateway_upstream_requests" in allowed.text


async def test_the_response_cache_never_crosses_callers(gw: GatewayClient) -> None:
    a = (await gw.as_key(KEY_A).post(BALANCES)).json()
    b = (await gw.as_key(KEY_B).post(BALANCES)).json()
    assert a != b
    assert (await gw.as_key(KEY_A).post(BALANCES)).json() == a


async def test_rate_limit_per_client_with_retry_after(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, cache_url: str, namespace: str
) -> None:
    settings = production(demo_settings(), *CLIENTS)
    settings = dataclasses.replace(
        settings,
        cache=dataclasses.replace(settings.cache, url=cache_url, namespace=namespace),
        security=dataclasses.replace(settings.security, rate_limit=RateLimit(1.0, 2)),
    )
    query = "{ countries { code } }"
    async with (
        running_gateway(settings, sim_transport, clock) as a,
        running_gateway(settings, sim_transport, clock) as b,
    ):
        a.as_key(KEY_A), b.as_key(KEY_A)
        first, second, third = [await a.post(query) for _ in range(3)]
        replica = await b.post(query)
        other_client = await b.as_key(KEY_B).post(query)
        clock.advance(1)
        later = await a.post(query)
    assert (first.status_code, second.status_code, later.status_code) == (200, 200, 200)
    assert third.status_code == 429 and third.headers["retry-after"] == "1"
    assert third.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert other_client.status_code == 200
    # With Redis, replicas share one bucket per client; in memory each process has its own.
    assert replica.status_code == (429 if cache_url.startswith("redis") else 200)


async def test_a_clients_own_rate_limit_wins_and_the_dev_no_key_caller_has_none(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    fast = dataclasses.replace(CLIENTS[1], rate_limit=RateLimit(1.0, 5))  # client-a
    settings = production(demo_settings(), CLIENTS[0], fast, *CLIENTS[2:])
    settings = with_section(settings, "security", rate_limit=RateLimit(1.0, 2))
    query = "{ countries { code } }"
    async with running_gateway(settings, sim_transport, clock) as gw:
        own = [(await gw.as_key(KEY_A).post(query)).status_code for _ in range(6)]
        default = [(await gw.as_key(KEY_B).post(query)).status_code for _ in range(3)]
    assert own == [200] * 5 + [429]  # its own burst of 5
    assert default == [200, 200, 429]  # [rate_limit]'s burst of 2
    development = dataclasses.replace(
        demo_settings(),
        security=dataclasses.replace(demo_settings().security, rate_limit=RateLimit(1.0, 1)),
    )
    async with running_gateway(development, sim_transport, clock) as gw:
        anonymous = [(await gw.as_key(None).post(query)).status_code for _ in range(20)]
    assert anonymous == [200] * 20  # a quick load test of the demo is not throttled


# --- JWT --------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def claims(clock: FakeClock, **changes: Any) -> dict[str, Any]:
    base = {
        "sub": "alice",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(clock()) + 300,
        "scope": "balances:read",
        "accounts": ["magma"],
    }
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwt_settings(config: JwtConfig) -> Any:
    return with_section(production(demo_settings(), *CLIENTS), "security", jwt=config)


async def ask(
    settings: Any, token: str, transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> httpx.Response:
    async with running_gateway(settings, transport, clock, key=None) as gateway:
        gateway.as_key(token)
        return await gateway.post(BALANCES)


async def test_hs256_tokens_map_claims_to_scopes_and_accounts(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = jwt_settings(JwtConfig(("HS256",), ISSUER, AUDIENCE, secret=Secret(HS_SECRET)))
    good = jwt.encode(claims(clock), HS_SECRET, algorithm="HS256")
    response = await ask(settings, good, sim_transport, clock)
    assert response.status_code == 200
    assert [r["account"]["id"] for r in response.json()["data"]["balances"]["results"]] == ["magma"]


@pytest.mark.parametrize(
    "case",
    ["expired", "wrong-audience", "wrong-issuer", "no-exp", "no-aud", "wrong-secret", "alg-none"],
)
async def test_bad_hs256_tokens_are_refused(
    case: str, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, sim: Simulator
) -> None:
    settings = jwt_settings(JwtConfig(("HS256",), ISSUER, AUDIENCE, secret=Secret(HS_SECRET)))
    changes: dict[str, Any] = {  # type: ignore[assignment]
        "expired": {"exp": int(clock()) - 3600},
        "wrong-audience": {"aud": "someone-else"},
        "wrong-issuer": {"iss": "https://evil.test"},
        "no-exp": {"exp": None},
        "no-aud": {"aud": None},
    }.get(case, {})
    if case == "alg-none":
        header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        token = f"{header}.{b64(json.dumps(claims(clock)).encode())}."
    else:
        token = jwt.encode(
            claims(clock, **changes),
            "another-secret-entirely-0123456789" if case == "wrong-secret" else HS_SECRET,
            algorithm="HS256",
        )
    response = await ask(settings, token, sim_transport, clock)
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"] == "Missing or invalid credentials."
    assert sum(sim.state.calls.values()) == 0


async def test_rs256_with_a_jwks_file_and_no_algorithm_confusion(
    rsa_key: rsa.RSAPrivateKey,
    tmp_path: Path,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
) -> None:
    public = rsa_key.public_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig"}]}))
    settings = jwt_settings(
        JwtConfig(("RS256",), ISSUER, AUDIENCE, jwks_file=str(tmp_path / "jwks.json"))
    )
    good = jwt.encode(claims(clock), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    assert (await ask(settings, good, sim_transport, clock)).status_code == 200

    # The attacker signs HS256 with the (public) RSA key as the HMAC secret.
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    signing_input = f"{header}.{b64(json.dumps(claims(clock)).encode())}"
    forged = (
        f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"
    )
    assert (await ask(settings, forged, sim_transport, clock)).status_code == 401
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong_signer = jwt.encode(claims(clock), other_key, algorithm="RS256", headers={"kid": "k1"})
    assert (await ask(settings, wrong_signer, sim_transport, clock)).status_code == 401


async def test_log_lines_carry_the_request_id_and_client(
    gw: GatewayClient, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.state.set_faults("magma", status=503)
    with caplog.at_level(logging.WARNING, logger="gateway.services.balances"):
        response = await gw.as_key(KEY_A).post(BALANCES, {"ids": ["magma"]})
    (record,) = [r for r in caplog.records if "account magma failed" in r.getMessage()]
    assert record.request_id == response.headers["x-request-id"]  # type: ignore[attr-defined]
    assert record.client == "client-a"  # type: ignore[attr-defined]


async def test_es256_with_a_jwks_url(
    tmp_path: Path, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tests.helpers import serving

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwks = {"keys": [{**jwk, "kid": "ec1", "use": "sig", "alg": "ES256"}]}
    idp = Starlette(routes=[Route("/jwks.json", lambda request: JSONResponse(jwks))])
    async with serving(idp) as idp_url:
        settings = jwt_settings(
            JwtConfig(("RS256", "ES256"), ISSUER, AUDIENCE, jwks_url=f"{idp_url}/jwks.json")
        )
        good = jwt.encode(claims(clock), key, algorithm="ES256", headers={"kid": "ec1"})
        forged = jwt.encode(
            claims(clock),
            ec.generate_private_key(ec.SECP256R1()),
            algorithm="ES256",
            headers={"kid": "ec1"},
        )
        assert (await ask(settings, good, sim_transport, clock)).status_code == 200
        assert (await ask(settings, forged, sim_transport, clock)).status_code == 401
