"""A URL-based schema tool against the real `serve`: graphql-inspector (npm, pinned,
installed into the test's temporary folder) introspects the development demo by its URL —
the full introspection query such tools send first — and finds the schema exactly the
committed `schema.graphql`."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import ROOT
from tests.system.processes import completed, demo_served, npm_installed

PACKAGES = ["@graphql-inspector/cli@7.0.0", "graphql@16.11.0"]


def test_graphql_inspector_reads_the_schema_from_the_url(
    tmp_path: Path, node: tuple[str, str]
) -> None:
    node_bin, npm = node
    folder = npm_installed(npm, tmp_path / "inspector", PACKAGES)
    inspector = folder / "node_modules" / ".bin" / "graphql-inspector"
    with demo_served(tmp_path) as demo:
        schema = str(ROOT / "schema.graphql")
        diff = completed(
            [node_bin, str(inspector), "diff", schema, f"{demo.url}/graphql"], cwd=folder
        )
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "No changes detected" in diff.stdout + diff.stderr
    assert "Traceback" not in demo.process.output
