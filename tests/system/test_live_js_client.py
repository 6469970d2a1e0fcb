"""A real JS client on live balances: graphql-sse's own client (in Node, installed into the
test's temporary folder from the npm registry, pinned) subscribes to the real `serve` and
gets the snapshot of each account — in its "distinct connections" mode, and in its "single
connection mode" (a reservation, one stream, the operations posted to it), where a query
runs beside the subscription on the same stream."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.system.processes import NodeScript, demo_served

PACKAGES = ["graphql-sse@2.6.1", "graphql@16.11.0"]
CLIENT = """
const { createClient } = require('graphql-sse');
const [url, want, mode] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
const singleConnection = mode === "single";
const client = createClient({ url, singleConnection, retryAttempts: 0 });
(async () => {
  const got = [];
  const query = `subscription { balanceUpdates(accountIds: ["ourvoice-sn", "magma"]) {
    __typename ... on AccountBalance { account { id } balances { total { amount } } } } }`;
  const beside = singleConnection
    ? (async () => {
        const answers = [];
        for await (const r of client.iterate({ query: "{ balances { complete } }" })) answers.push(r);
        return answers;
      })()
    : Promise.resolve([]);
  for await (const result of client.iterate({ query })) {
    got.push(result);
    if (got.length === want) break;
  }
  console.log(JSON.stringify({ updates: got, query: await beside }));
  client.dispose();
})().catch((e) => { console.error(e); process.exit(1); });
"""


@pytest.mark.parametrize("mode", ["distinct", "single"])
def test_graphql_sse_client_receives_the_snapshot_of_each_account(
    mode: str, tmp_path: Path, node: tuple[str, str]
) -> None:
    client = NodeScript(node, tmp_path / "client", PACKAGES, "client.js", CLIENT)
    with demo_served(tmp_path) as demo:
        seen = client.run(f"{demo.url}/graphql/stream", "2", mode)
    updates = {r["data"]["balanceUpdates"]["account"]["id"]: r for r in seen["updates"]}
    assert set(updates) == {"ourvoice-sn", "magma"}
    total = updates["ourvoice-sn"]["data"]["balanceUpdates"]["balances"][0]["total"]
    assert total == {"amount": "50000"}
    if mode == "single":
        assert seen["query"] == [{"data": {"balances": {"complete": True}}}]
    assert "Traceback" not in demo.process.output
