"""Apollo Client's own automatic persisted queries against the real `serve`: its
`PersistedQueryLink` (Apollo Client 4, in Node, pinned from the npm registry into the
test's temporary folder) sends a hash, gets `PERSISTED_QUERY_NOT_FOUND`, falls back to the
hash with the document — which registers it — and from then on sends the hash alone; also
over GET (`useGETForHashedQueries`), as CDNs like it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.system.processes import NodeScript, demo_served

PACKAGES = ["@apollo/client@4.3.8", "graphql@16.11.0", "rxjs@7.8.2"]
CLIENT = """
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { createHash } from "node:crypto";

const [uri, useGET] = [process.argv[2], process.argv[3] === "get"];
const sent = [];
const spy = async (url, options) => {
  const body = options.body ? JSON.parse(options.body) : null;
  const asked = new URL(String(url));
  sent.push({
    method: options.method ?? "GET",
    query: Boolean(body?.query ?? asked.searchParams.get("query")),
    hash: Boolean(body?.extensions?.persistedQuery ?? asked.searchParams.get("extensions")),
  });
  return fetch(url, options);
};
const client = new ApolloClient({
  link: new PersistedQueryLink({
    sha256: (text) => createHash("sha256").update(text).digest("hex"),
    useGETForHashedQueries: useGET,
  }).concat(new HttpLink({ uri, fetch: spy })),
  cache: new InMemoryCache(),
});
const query = gql`query Apq${useGET ? "Get" : "Post"} { balances(accountIds: ["ourvoice-sn"]) {
  results { ... on AccountBalance { account { id } balances { total { amount } } } } } }`;
const first = await client.query({ query, fetchPolicy: "no-cache" });
const second = await client.query({ query, fetchPolicy: "no-cache" });
console.log(JSON.stringify({ sent, first: first.data, second: second.data }));
"""


@pytest.mark.parametrize("method", ["post", "get"])
def test_apollo_persisted_query_link_falls_back_then_sends_the_hash_alone(
    method: str, tmp_path: Path, node: tuple[str, str]
) -> None:
    client = NodeScript(node, tmp_path / "client", PACKAGES, "client.mjs", CLIENT)
    with demo_served(tmp_path) as demo:
        seen = client.run(f"{demo.url}/graphql", method)
    verb = method.upper()
    assert seen["sent"] == [
        {"method": verb, "query": False, "hash": True},  # unknown: PERSISTED_QUERY_NOT_FOUND
        {"method": "POST", "query": True, "hash": True},  # the fallback registers it
        {"method": verb, "query": False, "hash": True},  # known now: the hash alone
    ]
    for answer in (seen["first"], seen["second"]):
        (result,) = answer["balances"]["results"]
        assert result["balances"][0]["total"]["amount"] == "50000"
    assert "Traceback" not in demo.process.output
