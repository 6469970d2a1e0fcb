"""A URL-based schema tool against the real `serve`: graphql-inspector (npm, pinned,
installed into the test's temporary folder) introspects the development demo by its URL —
the full introspection query such tools send first — and finds the schema exactly the
committed `schema.graphql`."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.helpers import ROOT
from tests.system.processes import clean_env, completed, npm_installed, serve_demo, started

PACKAGES = ["@graphql-inspector/cli@7.0.0", "graphql@16.11.0"]


def test_graphql_inspector_reads_the_schema_from_the_url(
    tmp_path: Path, node: tuple[str, str]
) -> None:
    node_bin, npm = node
    folder = npm_installed(npm, tmp_path / "inspector", PACKAGES)
    inspector = folder / "node_modules" / ".bin" / "graphql-inspector"
    command, port, _ = serve_demo(tmp_path)
    with started(command, tmp_path / "logs", env=clean_env()) as gateway:
        gateway.wait_http(f"http://127.0.0.1:{port}/healthz")
        diff = completed(
            [
                node_bin,
                str(inspector),
                "diff",
                str(ROOT / "schema.graphql"),
                f"http://127.0.0.1:{port}/graphql",
            ],
            cwd=folder,
        )
        gateway.stop(signal.SIGTERM)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "No changes detected" in diff.stdout + diff.stderr
    assert "Traceback" not in gateway.output
