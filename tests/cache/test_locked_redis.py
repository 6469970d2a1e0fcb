"""The gateway against a Redis locked down as docs/security.md says to: its own ACL user
and password (never in the URL), TLS with the CA file and a client certificate — on a
`redis-server` this test starts (`tests/locked_servers.py`), never the machine's.

What a user would notice: the dashboard's requests are served through the ACL user with
no command denied and every key under the gateway's prefix; that user can touch nothing
else; wrong credentials, a missing client certificate or a CA that did not sign the
server are refused — said, never a silent "no cache"; and credentials revoked while the
gateway runs take it out of readiness until they are back."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from gateway.app import store_for
from gateway.cache import keys
from gateway.cache.store import refusal
from gateway.config.secret import Secret
from gateway.config.settings import CacheSettings, Settings
from gateway.config.tls import TlsFiles
from tests.helpers import (
    TOP_UP,
    FakeClock,
    demo_settings,
    free_port,
    production,
    running_gateway,
    topup,
)
from tests.locked_servers import GATEWAY_ACL, LockedRedis, certificates

DASHBOARD = "{ balances { complete results { __typename } } }"


def cache_of(server: LockedRedis, over_tls: bool = False, **changes: Any) -> CacheSettings:
    """`[cache]` as an operator writes it for `server`."""
    cache = CacheSettings(
        url=server.tls_url if over_tls else server.url,
        namespace=server.namespace,
        username=server.user,
        password=Secret(server.password),
        tls=TlsFiles(server.certs.ca, server.certs.client_cert, server.certs.client_key)
        if over_tls
        else TlsFiles(),
    )
    return dataclasses.replace(cache, **changes)


def with_cache(cache: CacheSettings) -> Settings:
    """The demo's accounts under the production profile (so its client has a rate-limit
    bucket), the cache `cache`."""
    return dataclasses.replace(production(demo_settings()), cache=cache)


@contextmanager
def admin(server: LockedRedis) -> Iterator[redis.Redis]:
    """The server's `default` user, over the plain port (the test's own view of Redis)."""
    client = redis.Redis(port=server.port, password=server.admin_password)
    try:
        yield client
    finally:
        client.close()


async def reach_of(cache: CacheSettings) -> tuple[str, str]:
    """What readiness finds of Redis through `cache`, as the gateway's store asks it."""
    store = store_for(with_cache(cache))
    try:
        return await store.reach()
    finally:
        await store.close()


def acl(server: LockedRedis, *arguments: str) -> Any:
    """`ACL …` as the server's `default` user."""
    with admin(server) as client:
        return client.execute_command("ACL", *arguments)  # type: ignore[no-untyped-call]


def denied(server: LockedRedis) -> list[Any]:
    """What the ACL refused anyone since the server started (`ACL LOG`)."""
    entries: list[Any] = acl(server, "LOG")
    return entries


@pytest.mark.parametrize("tls", [False, True], ids=["password", "tls"])
async def test_the_dashboard_is_served_through_the_acl_user_with_nothing_denied(
    locked_redis_server: LockedRedis,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    tls: bool,
) -> None:
    """Every kind of key the gateway writes — balances, single-flight markers, the
    response cache, rate-limit buckets, a top-up's invalidation — goes through the ACL
    line docs/security.md gives, and Redis refused none of it."""
    settings = with_cache(cache_of(locked_redis_server, tls))
    async with running_gateway(settings, sim_transport, clock) as gw:
        first = await gw.query(DASHBOARD)
        second = await gw.query(DASHBOARD)  # from the cache
        paid = await gw.query(TOP_UP, topup())
        ready = await gw.http.get("/readyz")
        healthy = gw.app.state.readiness.store.healthy
    with admin(locked_redis_server) as client:
        keys = [key.decode() for key in client.scan_iter(count=1000)]
    assert first == second and first["data"]["balances"]["complete"] is True
    assert paid["data"]["topUp"]["__typename"] == "TopUpSucceeded"
    assert ready.json() == {"status": "ready", "checks": {"cache": "ok", "journal": "ok"}}
    assert healthy
    assert all(key.startswith("locked:v1:") for key in keys), keys
    kinds = {key.split(":")[2] for key in keys}
    # the balances, the response cache, quota windows, the client's bucket, a top-up's
    assert {"balance", "response", "budget", "rate", "gen"} <= kinds, kinds
    assert denied(locked_redis_server) == []


def test_the_acl_user_can_touch_nothing_outside_its_prefix(
    locked_redis_server: LockedRedis,
) -> None:
    server = locked_redis_server
    client = redis.Redis(port=server.port, username=server.user, password=server.password)
    with admin(server) as root:
        root.set("other-app:secret", "floats")
    refused = []
    try:
        attempts: dict[str, Callable[[], object]] = {
            "read another app's key": lambda: client.get("other-app:secret"),
            "write outside the prefix": lambda: client.set("other-app:secret", "poisoned"),
            "delete outside the prefix": lambda: client.delete("other-app:secret"),
            "list every key": lambda: client.keys("*"),
            "flush the database": lambda: client.flushdb(asynchronous=False),
            "read the configuration": lambda: client.config_get("*"),
            "publish on another channel": lambda: client.publish("news", "x"),
            "publish on another namespace's": lambda: client.publish("other:v1:changed", "x"),
            "subscribe to another namespace's": lambda: subscribe(client, "other:v1:changed"),
        }
        for what, attempt in attempts.items():
            with pytest.raises(redis.exceptions.NoPermissionError):
                attempt()
            refused.append(what)
        allowed = client.set("locked:v1:mine", "1") and client.get("locked:v1:mine")
        published = client.publish("locked:v1:changed", "x")  # its own channel: 0 listening
        subscribe(client, "locked:v1:changed")
    finally:
        client.close()
    with admin(server) as root:
        untouched = root.get("other-app:secret")
    assert refused == list(attempts)
    assert allowed == b"1"
    assert published == 0
    assert untouched == b"floats"


def subscribe(client: redis.Redis, channel: str) -> None:
    """SUBSCRIBE, and Redis's answer to it (its refusal raised)."""
    subscription = client.pubsub()  # type: ignore[no-untyped-call]
    try:
        subscription.subscribe(channel)
        subscription.get_message(timeout=5)
    finally:
        subscription.close()


@pytest.mark.parametrize("tls", [False, True], ids=["password", "tls"])
async def test_replicas_tell_each_other_of_changes_through_the_acl_user_on_their_channel_only(
    locked_redis_server: LockedRedis, tls: bool
) -> None:
    """One replica's store publishes, another's subscription hears it — through the ACL
    user; a gateway configured with another namespace is refused that namespace's channel
    (the ACL holds it to `locked:v1:`), saying so."""
    server = locked_redis_server
    ours, theirs = (store_for(with_cache(cache_of(server, tls))) for _ in range(2))
    elsewhere = store_for(with_cache(cache_of(server, tls, namespace="other")))
    try:
        async with theirs.subscription(keys.CHANGED) as messages:
            await ours.publish(keys.CHANGED, "abc magma")
            async with asyncio.timeout(10):  # a bound on Redis, not a timing test
                heard = await anext(messages)
        with pytest.raises(redis.exceptions.NoPermissionError) as raised:
            async with elsewhere.subscription(keys.CHANGED):
                pass
    finally:
        for store in (ours, theirs, elsewhere):
            await store.close()
    assert heard == "abc magma"
    assert "the ACL user may not" in (refusal(raised.value) or "")
    assert ours.healthy and denied(server)[0][b"object"] == b"other:v1:changed"


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"password": Secret("not-the-password")}, "credentials were refused"),
        ({"username": None}, "credentials were refused"),  # the default user's password
        ({"tls": "another CA"}, "TLS failed"),
    ],
    ids=["wrong password", "no user", "untrusted server"],
)
async def test_what_redis_refuses_is_said_never_a_silent_no_cache(
    locked_redis_server: LockedRedis, tmp_path: Path, changes: dict[str, Any], said: str
) -> None:
    server = locked_redis_server
    tls = "tls" in changes
    if changes.get("tls") == "another CA":  # (a missing client certificate: Redis drops
        # the handshake without a word, which reads as unreachable — its log says why)
        other = certificates(tmp_path / "other")
        changes = {"tls": TlsFiles(other.ca, other.client_cert, other.client_key)}
    reach, reason = await reach_of(cache_of(server, tls, **changes))
    assert reach == "refused"
    assert said in reason


async def test_a_redis_that_cannot_be_reached_is_not_refused() -> None:
    """Down is not refused: readiness says degraded, and the start is not stopped."""
    cache = CacheSettings(url=f"redis://127.0.0.1:{free_port()}/0", username="u")
    reach, _ = await reach_of(cache)
    assert reach == "unreachable"


async def test_credentials_revoked_while_running_take_the_gateway_out_of_readiness(
    locked_redis_server: LockedRedis,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = locked_redis_server
    settings = with_cache(cache_of(server))
    async with running_gateway(settings, sim_transport, clock) as gw:
        before = await gw.http.get("/readyz")
        acl(server, "DELUSER", server.user)  # its connections end too
        revoked = await gw.http.get("/readyz")
        served = await gw.query(DASHBOARD)  # still answered, upstream, and said so
        rules = GATEWAY_ACL.format(password=server.password, namespace="locked:v1")
        acl(server, "SETUSER", server.user, *rules.split())
        back = await gw.http.get("/readyz")
    assert before.status_code == 200
    assert (revoked.status_code, revoked.json()) == (
        503,
        {"status": "not_ready", "checks": {"cache": "refused", "journal": "ok"}},
    )
    assert "Redis refuses this gateway" in caplog.text
    assert served["data"]["balances"]["complete"] is True
    assert (back.status_code, back.json()["status"]) == (200, "ready")


@pytest.mark.parametrize(
    "command", ["get", "mget", "setex", "incrby", "del", "eval", "hset", "publish"]
)
async def test_an_acl_that_lost_one_command_is_refused_naming_it(
    locked_redis_server: LockedRedis, command: str
) -> None:
    """Found by readiness itself — a replica out of rotation gets no request to fail. (A
    command the rate-limit script calls is refused as the script: Redis names no more.)"""
    server = locked_redis_server
    acl(server, "SETUSER", server.user, f"-{command}")
    reach, reason = await reach_of(cache_of(server))
    assert reach == "refused", reason
    named = "eval" if command == "hset" else f"'{command}'"
    assert named in reason.lower() and "acl user may not" in reason.lower()


async def test_an_acl_shrunk_while_running_is_not_ready_until_restored_and_logs_no_flapping(
    locked_redis_server: LockedRedis,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = locked_redis_server
    async with running_gateway(with_cache(cache_of(server)), sim_transport, clock) as gw:
        acl(server, "SETUSER", server.user, "-eval")  # the rate-limit script
        shrunk = await gw.http.get("/readyz")
        answers = [await gw.query(DASHBOARD) for _ in range(5)]
        acl(server, "SETUSER", server.user, "+eval")
        restored = await gw.http.get("/readyz")
    assert (shrunk.status_code, shrunk.json()["checks"]["cache"]) == (503, "refused")
    assert all(a["data"]["balances"]["complete"] for a in answers)
    assert restored.status_code == 200
    assert "recovered" not in caplog.text  # a refusal is not an outage that comes and goes
