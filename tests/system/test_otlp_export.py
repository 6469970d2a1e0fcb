"""The real `serve` with `[tracing] enabled = true` exports over OTLP/HTTP where the
standard `OTEL_*` variables say — here a collector stand-in on 127.0.0.1 — and flushes what
it holds when it stops."""

from __future__ import annotations

import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.helpers import free_port
from tests.system.processes import (
    KEY,
    SECRETS,
    clean_env,
    gateway_and_simulator,
    production_config,
)


class Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        Collector.received.append((self.path, body))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_spans_reach_an_otlp_endpoint_named_by_the_environment(tmp_path: Path) -> None:
    collector = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    sim_port, gw_port = free_port(), free_port()
    sim_url, gw_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{gw_port}"
    config = tmp_path / "gateway.toml"
    config.write_text(
        production_config(sim_url, tmp_path / "journal.db", "[tracing]\nenabled = true\n")
    )
    env = clean_env(
        **SECRETS,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.server_address[1]}",
        OTEL_SERVICE_NAME="gateway-under-test",
    )
    logs = tmp_path / "logs"
    try:
        with gateway_and_simulator(config, (sim_port, gw_port), logs, env) as (sim, gateway):
            answer = httpx.post(
                f"{gw_url}/graphql",
                json={"query": "query Seen { balances { complete } }"},
                headers={"authorization": f"Bearer {KEY}"},
                timeout=30,
            )
            status = gateway.stop(signal.SIGINT)  # stops at once; the batch is flushed
            sim.stop(signal.SIGTERM)
    finally:
        collector.shutdown()
        collector.server_close()
    assert answer.status_code == 200 and status == 0
    spans: list[Any] = []
    for path, body in Collector.received:
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            assert service["service.name"] == "gateway-under-test"
            spans.extend(s for scope in resource.scope_spans for s in scope.spans)
    assert "query Seen" in {s.name for s in spans}
    assert len([s for s in spans if s.name in ("GET", "POST")]) == 5
