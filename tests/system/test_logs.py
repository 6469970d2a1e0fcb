"""The real CLI at its default log level: one access line per request, each with its
request id, and never a "Logging error" or a traceback — for `serve` in the production
profile and for `simulate` alone. Both run as their own OS processes, as deployed."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx
import pytest

from gateway.server.auth import key_hash
from tests.helpers import free_port
from tests.system.processes import CLI, clean_env, started

KEY = "bgw_system-test-key-0123456789abcdef"
# The simulator's demo credentials, handed over as env: references (production refuses
# inline secrets); each must stay out of every line either process writes.
SECRETS = {
    "OV_KEY": "demo-ourvoice-sn-key",
    "MAGMA_PRIVATE": "demo-magma-private-key",
    "MAGMA_SECRET": "demo-magma-secret-key",
    "MUDA_KEY": "demo-muda-api-key",
    "MUDA_SECRET": "demo-muda-secret-key",
    "PAYMOB_PUBLIC": "demo-paymob-public-key",
    "PAYMOB_SECRET": "demo-paymob-secret-key",
    "CURSOR_SECRET": "system-test-cursor-secret-0123456789",
}
ACCESS = re.compile(
    r" INFO uvicorn\.access \[([0-9a-f]{16}) ([^\]]+)\] .*\"(\w+) (\S+) HTTP/1\.1\" (\d{3})"
)
QUERY = "{ balances { complete results { __typename ... on ProviderFailure { code } } } }"


def production_config(sim: str, journal: Path) -> str:
    return f"""
[server]
profile = "production"
cursor_secret = "env:CURSOR_SECRET"

[idempotency]
url = "sqlite:///{journal}"

[clients.ops]
key_sha256 = "{key_hash(KEY)}"
scopes = ["balances:read"]
accounts = ["*"]

[accounts.ourvoice-sn]
provider = "ourvoice"
base_url = "{sim}/ourvoice"
api_key = "env:OV_KEY"

[accounts.magma]
provider = "magma_onepay"
base_url = "{sim}/magma"
private_key = "env:MAGMA_PRIVATE"
secret_key = "env:MAGMA_SECRET"

[accounts.muda-ug]
provider = "muda"
base_url = "{sim}/muda/v1"
api_key = "env:MUDA_KEY"
secret_key = "env:MUDA_SECRET"

[accounts.paymob-eg]
provider = "paymob_bills"
base_url = "{sim}/paymob"
public_key = "env:PAYMOB_PUBLIC"
secret_key = "env:PAYMOB_SECRET"
"""


def assert_clean(output: str) -> None:
    assert "Logging error" not in output, output
    assert "Traceback" not in output, output
    for value in SECRETS.values():
        assert value not in output
    assert KEY not in output


def access_lines(output: str) -> list[re.Match[str]]:
    return [m for line in output.splitlines() if (m := ACCESS.search(line))]


def test_serve_in_production_and_simulate_log_one_access_line_per_request(
    tmp_path: Path,
) -> None:
    sim_port, gw_port = free_port(), free_port()
    sim_url, gw_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{gw_port}"
    config = tmp_path / "gateway.toml"
    config.write_text(production_config(sim_url, tmp_path / "journal.db"))
    env = clean_env(**SECRETS)
    logs = tmp_path / "logs"
    with (
        started([str(CLI), "simulate", "--port", str(sim_port)], logs, env=env) as sim,
        started(
            [str(CLI), "serve", "--config", str(config), "--port", str(gw_port)], logs, env=env
        ) as gateway,
    ):
        sim.wait_http(f"{sim_url}/_sim/calls")
        gateway.wait_http(f"{gw_url}/healthz")
        ok = {"authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=gw_url, timeout=30) as http:
            sent = [
                http.get("/healthz"),
                http.post("/graphql", json={"query": QUERY}, headers=ok),
                http.post("/graphql", json={"query": QUERY}, headers=ok),  # response cache
                http.post("/graphql", json={"query": QUERY}, headers={"x-api-key": "wrong"}),
                http.post("/graphql", json={"query": "{ nope }"}, headers=ok),
                http.post(
                    "/graphql", content=b"{", headers={**ok, "content-type": "application/json"}
                ),
                http.get("/metrics", headers=ok),  # 403: no metrics:read
                http.get("/"),
                http.get("/no-such-page"),
            ]
        with httpx.Client(base_url=sim_url, timeout=30) as http:
            direct = [http.get("/_sim/calls"), http.get("/_sim/faults")]
        gateway_status = gateway.stop(signal.SIGTERM)
        sim_status = sim.stop(signal.SIGINT)

    assert [r.status_code for r in sent] == [200, 200, 200, 401, 200, 400, 403, 200, 404]
    assert sent[1].json()["data"]["balances"]["complete"] is True
    assert sent[7].json() == {
        "service": "balance-gateway",
        "graphql": "/graphql",
        "health": "/healthz",
    }
    assert gateway_status == 0 and sim_status == 0

    gateway_lines = access_lines(gateway.output)
    assert len(gateway_lines) == len(sent) + 1, gateway.output  # + wait_http's one answer
    by_id = {m.group(1): m for m in gateway_lines}
    for response in sent:
        line = by_id[response.headers["x-request-id"]]  # the answer's id is on its line
        assert int(line.group(5)) == response.status_code
        assert line.group(4) == response.request.url.path
    assert by_id[sent[1].headers["x-request-id"]].group(2) == "ops"  # the client's name
    assert_clean(gateway.output)

    sim_lines = access_lines(sim.output)
    upstream_calls = sum(direct[0].json().values())  # what the gateway asked for
    assert len(sim_lines) == upstream_calls + len(direct) + 1, sim.output
    assert len({m.group(1) for m in sim_lines}) == len(sim_lines)  # one id per request
    for response in direct:
        assert response.headers["x-request-id"] in {m.group(1) for m in sim_lines}
    assert_clean(sim.output)


@pytest.mark.parametrize("level", ["debug", "info"])
def test_a_traceback_in_the_log_is_redacted(level: str, tmp_path: Path) -> None:
    """A configured secret inside an exception's text is replaced in the rendered
    traceback too (the handler the CLI installs redacts what it writes)."""
    import logging

    from gateway import log_context

    stream = (tmp_path / "log.txt").open("w+", encoding="utf-8")
    try:
        log_context.configure(level, stream)
        log_context.install(["provider-secret-value"])
        log = logging.getLogger("gateway.test")
        try:
            raise RuntimeError("upstream said provider-secret-value; Authorization: Bearer abc.def")
        except RuntimeError:
            log.exception("failed with %s", "provider-secret-value")
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:1",
            "GET",
            "/x?k=provider-secret-value",
            "1.1",
            200,
        )
        stream.flush()
        stream.seek(0)
        text = stream.read()
    finally:
        log_context.configure("warning")
        stream.close()
    assert "provider-secret-value" not in text
    assert "abc.def" not in text
    assert "Traceback" in text and "RuntimeError: upstream said ***" in text
    assert '"GET /x?k=*** HTTP/1.1" 200' in text
