"""The real CLI at its default log level: one access line per request, each with its
request id, and never a "Logging error" or a traceback — for `serve` in the production
profile and for `simulate` alone. Both run as their own OS processes, as deployed."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import free_port
from tests.system.processes import (
    KEY,
    SECRETS,
    clean_env,
    gateway_and_simulator,
    production_config,
)

ACCESS = re.compile(r" INFO gateway\.access \[([0-9a-f]{16}) ([^\]]+)\] \"(\w+) (\S+)\" (\d{3}) ")
QUERY = "{ balances { complete results { __typename ... on ProviderFailure { code } } } }"


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
    with gateway_and_simulator(config, (sim_port, gw_port), logs, env) as (sim, gateway):
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
                http.get("/readyz"),
            ]
        with httpx.Client(base_url=sim_url, timeout=30) as http:
            direct = [http.get("/_sim/calls"), http.get("/_sim/faults")]
        gateway_status = gateway.stop(signal.SIGTERM)
        sim_status = sim.stop(signal.SIGINT)

    assert [r.status_code for r in sent] == [200, 200, 200, 401, 200, 400, 403, 200, 404, 200]
    assert sent[1].json()["data"]["balances"]["complete"] is True
    assert sent[7].json() == {
        "service": "balance-gateway",
        "graphql": "/graphql",
        "mcp": "/mcp",
        "dashboard": "/dashboard",
        "health": "/healthz",
        "ready": "/readyz",
    }
    assert gateway_status == 0 and sim_status == 0

    gateway_lines = access_lines(gateway.output)
    # The health checks are left out by default.
    logged = [r for r in sent if r.request.url.path not in ("/healthz", "/readyz")]
    assert len(gateway_lines) == len(logged), gateway.output
    by_id = {m.group(1): m for m in gateway_lines}
    for response in logged:
        line = by_id[response.headers["x-request-id"]]  # the answer's id is on its line
        assert int(line.group(5)) == response.status_code
        assert line.group(4) == response.request.url.path
    assert by_id[sent[1].headers["x-request-id"]].group(2) == "ops"  # the client's name
    assert_clean(gateway.output)

    sim_lines = access_lines(sim.output)
    upstream_calls = sum(direct[0].json().values())  # what the gateway asked for
    assert len(sim_lines) == upstream_calls + len(direct) + 1, sim.output  # + wait_http's
    assert len({m.group(1) for m in sim_lines}) == len(sim_lines)  # one id per request
    for response in direct:
        assert response.headers["x-request-id"] in {m.group(1) for m in sim_lines}
    assert_clean(sim.output)


def written(
    path: Path, write: Callable[[], None], level: str, fmt: str = "text", levels: Any = ()
) -> str:
    """What the handler the CLI installs writes to `path` while `write` logs, with
    "provider-secret-value" configured as a secret."""
    from gateway.observability import log_format

    stream = path.open("w+", encoding="utf-8")
    try:
        log_format.configure(level, fmt, levels, stream)
        log_format.add_secrets(["provider-secret-value"])
        write()
        stream.flush()
        stream.seek(0)
        return stream.read()
    finally:
        log_format.configure("warning", stream=sys.__stderr__)  # never a closed one
        stream.close()


@contextlib.contextmanager
def the_cli_handler_alone() -> Iterator[None]:
    """The root logger with the CLI's handler alone, as in production (pytest's own
    handlers taken off for the while)."""
    root = logging.getLogger()
    others = [h for h in root.handlers if h is not root.handlers[-1]]
    for handler in others:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in others:
            root.addHandler(handler)


@pytest.mark.parametrize("level", ["debug", "info"])
def test_a_traceback_in_the_log_is_redacted(level: str, tmp_path: Path) -> None:
    """A configured secret inside an exception's text is replaced in the rendered
    traceback too (the handler the CLI installs redacts what it writes)."""

    def write() -> None:
        try:
            raise RuntimeError("upstream said provider-secret-value; Authorization: Bearer abc.def")
        except RuntimeError:
            logging.getLogger("gateway.test").exception("failed with %s", "provider-secret-value")
        logging.getLogger("uvicorn.error").info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:1",
            "GET",
            "/x?k=provider-secret-value",
            "1.1",
            200,
        )

    text = written(tmp_path / "log.txt", write, level)
    assert "provider-secret-value" not in text
    assert "abc.def" not in text
    assert "Traceback" in text and "RuntimeError: upstream said ***" in text
    assert '"GET /x?k=*** HTTP/1.1" 200' in text


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line a process wrote, each of which must be one JSON object."""
    lines = [line for line in output.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # raises on any line that is not JSON
    assert all(isinstance(p, dict) for p in parsed)
    return parsed


def test_json_logs_carry_one_parsed_access_line_per_request_with_what_it_did(
    tmp_path: Path,
) -> None:
    """`[logging] format = "json"` (and `--log-format json` for the simulator): every line
    is one JSON object; each request's access line says what it did — the operation, the
    accounts asked, the upstream calls made, cache hits and misses, the bytes sent."""
    sim_port, gw_port = free_port(), free_port()
    sim_url, gw_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{gw_port}"
    config = tmp_path / "gateway.toml"
    logging_section = '[logging]\nformat = "json"\nhealth_checks = true\n'
    config.write_text(production_config(sim_url, tmp_path / "journal.db", logging_section))
    env = clean_env(**SECRETS)
    logs = tmp_path / "logs"
    ok = {"authorization": f"Bearer {KEY}"}
    named = "query Dashboard " + QUERY
    long_name = "N" * 150
    with gateway_and_simulator(
        config, (sim_port, gw_port), logs, env, simulate=["--log-format", "json"]
    ) as (sim, gateway):
        with httpx.Client(base_url=gw_url, timeout=30) as http:
            cold = http.post("/graphql", json={"query": named}, headers=ok)
            again = http.post("/graphql", json={"query": named}, headers=ok)  # response cache
            warm = http.post("/graphql", json={"query": QUERY}, headers=ok)  # balance cache
            odd = http.post(
                "/graphql",
                json={"query": f"query {long_name} {{ __typename }}", "operationName": long_name},
                headers=ok,
            )
            refused = http.post("/graphql", json={"query": QUERY}, headers={"x-api-key": "no"})
            health = http.get("/healthz")
        gateway.stop(signal.SIGTERM)
        sim.stop(signal.SIGTERM)

    entries = json_lines(gateway.stderr)
    assert json_lines(gateway.stdout) == []  # the ready banner too is a JSON event
    (ready,) = [e for e in entries if e.get("event") == "ready"]
    assert ready["graphql"] == f"{gw_url}/graphql" and ready["profile"] == "production"
    assert_clean(gateway.output)
    assert {"time", "level", "logger", "message", "request_id", "client", "pid"} <= set(entries[0])
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"]) for e in entries)
    access = {e["request_id"]: e for e in entries if e["logger"] == "gateway.access"}

    def line(response: httpx.Response) -> dict[str, Any]:
        entry = access[response.headers["x-request-id"]]
        assert entry["status"] == response.status_code
        assert entry["bytes"] == len(response.content)
        assert entry["method"] == response.request.method
        assert entry["path"] == response.request.url.path
        assert entry["duration_ms"] > 0
        return entry

    first = line(cold)
    assert (first["operation_type"], first["operation_name"]) == ("query", "Dashboard")
    assert first["client"] == "ops" and first["outcome"] == "ok"
    assert first["accounts"] == 4 and first["cache_misses"] == 4 and first["cache_hits"] == 0
    assert first["upstream_calls"] == 5  # one per account, and Muda's token exchange
    assert first["response_cache"] == "miss"
    second = line(again)
    assert second["response_cache"] == "hit" and second["upstream_calls"] == 0
    # a hit is logged as what it answers: the document's operation and accounts
    assert (second["operation_name"], second["accounts"]) == ("Dashboard", 4)
    third = line(warm)
    assert (third["cache_hits"], third["cache_misses"], third["upstream_calls"]) == (4, 0, 0)
    assert third["operation_name"] is None
    assert line(odd)["operation_name"] == "N" * 100  # cut
    refusal = line(refused)
    assert (refusal["outcome"], refusal["reason"], refusal["client"]) == (
        "refused",
        "unauthenticated",
        "-",
    )
    assert line(health)["path"] == "/healthz"  # health_checks = true
    assert "uvicorn.access" not in {e["logger"] for e in entries}  # ours only

    sim_entries = json_lines(sim.stderr)
    assert any(e["logger"] == "gateway.access" for e in sim_entries)
    assert json_lines(sim.stdout) == []
    assert [e["simulator"] for e in sim_entries if e.get("event") == "ready"] == [sim_url]


def test_an_exception_is_one_json_field_redacted_and_levels_are_per_logger(
    tmp_path: Path,
) -> None:
    def write() -> None:
        try:
            raise RuntimeError("upstream said provider-secret-value\nand more")
        except RuntimeError:
            logging.getLogger("gateway.test").exception("failed: %s", "provider-secret-value")
        logging.getLogger("gateway.chatty").info("left out: below its own level")
        logging.getLogger("gateway.chatty.child").warning("kept")

    text = written(tmp_path / "log.json", write, "info", "json", [("gateway.chatty", "warning")])
    failed, kept = json_lines(text)
    assert failed["level"] == "error" and failed["message"] == "failed: ***"
    assert (
        "Traceback" in failed["exception"]
        and "RuntimeError: upstream said ***" in (failed["exception"])
    )
    assert "provider-secret-value" not in text
    assert kept["message"] == "kept" and kept["logger"] == "gateway.chatty.child"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_access_line_is_written_as_logging_would_write_it(fmt: str, tmp_path: Path) -> None:
    """The access line goes straight to the handler's stream (no log record per request)
    while that handler is the only one: the same line, field for field, redacted alike, as
    the record `logging` writes once another handler listens."""
    from gateway.observability import log_context

    stats = log_context.RequestStats(operation_type="query", operation_name="Dash", accounts=2)
    stats.outcome = "ok"
    scope = {"method": "POST", "path": "/graphql?k=provider-secret-value", "client": ("1.2.3.4", 5)}

    def write() -> None:
        log_context.request_id.set("0123456789abcdef")
        log_context.client_name.set("ops")
        with the_cli_handler_alone():
            log_context.write_access_line(scope, 200, 120, 0.0, stats)  # direct
        log_context.write_access_line(scope, 200, 120, 0.0, stats)  # through logging

    direct, logged = written(tmp_path / "log", write, "info", fmt).splitlines()
    assert "provider-secret-value" not in direct
    timing = re.compile(r"\d+\.\d ms ")  # the two lines were written moments apart
    if fmt == "json":
        first, second = json.loads(direct), json.loads(logged)
        for entry in (first, second):
            assert entry.pop("time") and entry.pop("duration_ms") >= 0
            entry["message"] = timing.sub("", entry["message"])
        assert first == second
        assert first["path"] == "/graphql?k=***" and first["operation_name"] == "Dash"
    else:
        assert timing.sub("", direct).split(" ", 1)[1] == timing.sub("", logged).split(" ", 1)[1]
        assert direct.split(" ", 1)[1].startswith("INFO gateway.access [0123456789abcdef ops]")


def test_a_handler_between_the_access_logger_and_the_root_still_sees_the_line(
    tmp_path: Path,
) -> None:
    """The access line skips `logging` only while nothing but the CLI's handler would see
    it: a handler on `gateway` (a parent of `gateway.access`) gets its record."""
    from gateway.observability import log_context

    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    parent = logging.getLogger("gateway")
    collect = Collect()

    def write() -> None:
        parent.addHandler(collect)
        try:
            with the_cli_handler_alone():
                log_context.write_access_line(
                    {"method": "POST", "path": "/graphql"}, 200, 1, 0.0, log_context.RequestStats()
                )
        finally:
            parent.removeHandler(collect)

    written(tmp_path / "log", write, "info")
    assert len(seen) == 1 and seen[0].startswith('"POST /graphql" 200')


def test_a_filter_on_the_root_logger_leaves_the_access_line_its_direct_way(
    tmp_path: Path,
) -> None:
    """A root logger's own filters see only records made on the root logger (the MCP
    SDK's, `_compat/mcp.quiet_root_records`), never the access logger's: with one
    installed, the access line is still written without a log record."""
    from gateway._compat import mcp as mcp_compat
    from gateway.observability import log_context

    made: list[str] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record.name)
        return record

    root = logging.getLogger()

    def write() -> None:
        mcp_compat.quiet_root_records()
        logging.setLogRecordFactory(counting)
        try:
            with the_cli_handler_alone():
                log_context.write_access_line(
                    {"method": "POST", "path": "/mcp"}, 200, 1, 0.0, log_context.RequestStats()
                )
        finally:
            logging.setLogRecordFactory(factory)

    line = written(tmp_path / "log", write, "info")
    assert '"POST /mcp" 200' in line
    assert any(isinstance(f, mcp_compat.SdkRootRecords) for f in root.filters)
    assert "gateway.access" not in made  # no record: the direct way
