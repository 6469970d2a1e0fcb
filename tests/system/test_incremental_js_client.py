"""A real JS client on results as they arrive: Apollo Client 4 (its HttpLink and
`GraphQL17Alpha9Handler`, and again its `Defer20220824Handler`, in Node, installed into the test's temporary folder from the npm
registry, pinned) asks the real `serve` for a dashboard with `results @stream` and the
totals deferred, while the simulator holds one provider back: the client sees the fast
accounts before the slow one, then everything, amounts exact."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.system.processes import NodeScript, demo_served

PACKAGES = ["@apollo/client@4.3.8", "graphql@16.11.0", "rxjs@7.8.2"]
SLOW = "magma"
CLIENT = """
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { Defer20220824Handler, GraphQL17Alpha9Handler } from "@apollo/client/incremental";

const handlers = { current: GraphQL17Alpha9Handler, legacy: Defer20220824Handler };
const client = new ApolloClient({
  link: new HttpLink({ uri: process.argv[2] }),
  cache: new InMemoryCache(),
  incrementalHandler: new handlers[process.argv[3]](),
});
const query = gql`query Dashboard { balances {
  results @stream { __typename
    ... on AccountBalance { account { id } balances { id total { amount currency } } }
    ... on ProviderFailure { account { id } code } }
  ... @defer(label: "totals") { totals { currency kind total { amount } } complete } } }`;
const seen = [];
client.watchQuery({ query, fetchPolicy: "no-cache" }).subscribe({
  next(result) {
    const report = result.data?.balances;
    seen.push({
      state: result.dataState,
      ids: (report?.results ?? []).map((r) => r.account.id),
      data: result.data ?? null,
    });
    if (result.dataState === "complete") {
      console.log(JSON.stringify(seen));
      process.exit(0);
    }
  },
  error(e) { console.error(e); process.exit(1); },
});
"""


@pytest.mark.parametrize("handler", ["current", "legacy"])
def test_apollo_client_sees_the_fast_accounts_before_the_slow_one(
    handler: str, tmp_path: Path, node: tuple[str, str]
) -> None:
    """With each of Apollo's handlers, which ask for their own format: graphql-js 17's
    (`incrementalSpec=v0.2`) and 2022's (`deferSpec=20220824`)."""
    client = NodeScript(node, tmp_path / "client", PACKAGES, "client.mjs", CLIENT)
    with demo_served(tmp_path) as demo:
        hold = urllib.request.Request(
            f"{demo.sim_url}/_sim/faults/{SLOW}",
            data=json.dumps({"latency_seconds": 2}).encode(),
            method="PUT",
        )
        with urllib.request.urlopen(hold, timeout=10) as answer:
            assert answer.status == 200
        seen = client.run(f"{demo.url}/graphql", handler)
    streaming = [s for s in seen if s["state"] == "streaming" and s["ids"]]
    assert streaming, seen
    assert SLOW not in streaming[0]["ids"], "the first results do not wait for the slow one"
    final = seen[-1]
    assert final["state"] == "complete"
    assert sorted(final["ids"]) == sorted(
        ["ourvoice-sn", "ourvoice-ci", SLOW, "muda-ug", "paymob-eg"]
    )
    report = final["data"]["balances"]
    assert report["complete"] is True and report["totals"]
    sn = next(r for r in report["results"] if r["account"]["id"] == "ourvoice-sn")
    assert sn["balances"][0]["total"] == {
        "amount": "50000",
        "currency": "XOF",
        "__typename": "Money",
    }
    assert "Traceback" not in demo.process.output
