"""Transaction history: exact pages in order, cursors, filters at Cairo midnight and DST,
status mapping, failures in place."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from gateway.domain import TransactionStatus
from gateway.errors import ClientError, UpstreamContext, UpstreamError
from gateway.providers import magma_onepay, muda, paymob_bills
from gateway.simulator import Simulator
from gateway.simulator.magma_onepay import magma_rows
from gateway.simulator.muda import muda_rows
from gateway.simulator.paymob_bills import paymob_rows
from gateway.upstream.client import UpstreamResponse
from tests.helpers import (
    FakeClock,
    GatewayClient,
    Recording,
    demo_settings,
    paymob_fake,
    running_gateway,
    with_account,
)

PAGE = """query($id: ID!, $first: Int, $after: String, $filter: TransactionFilter) {
  transactions(accountId: $id, first: $first, after: $after, filter: $filter) {
    __typename
    ... on TransactionConnection { totalCount pageInfo { hasNextPage endCursor }
      edges { cursor node { id providerId reference type status rawStatus direction createdAt
        amount { amount currency } fee { amount } account { id } } } }
    ... on ProviderFailure { code message retryable }
  } }"""
NINETY_DAYS = {"createdFrom": "2024-03-06T00:00:00Z", "createdTo": "2024-06-04T00:43:26Z"}


async def walk(
    gw: GatewayClient,
    account: str,
    first: int,
    flt: dict[str, Any] | None = None,
    between: Any = None,
) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    for page in range(1000):
        data = (
            await gw.query(PAGE, {"id": account, "first": first, "after": after, "filter": flt})
        )["data"]["transactions"]
        assert data["__typename"] == "TransactionConnection", data
        assert len(data["edges"]) <= first
        nodes.extend(e["node"] for e in data["edges"])
        if not data["pageInfo"]["hasNextPage"]:
            return nodes
        after = data["pageInfo"]["endCursor"]
        if between is not None:
            between(page)
    raise AssertionError("never ended")


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def expected_paymob(since: str | None = None, until: str | None = None) -> list[str]:
    rows = sorted(
        paymob_rows(),
        key=lambda r: (instant(str(r["date_created"])).timestamp(), str(r["transaction_ref"])),
        reverse=True,
    )
    return [
        str(r["transaction_ref"])
        for r in rows
        if (since is None or instant(str(r["date_created"])) >= instant(since))
        and (until is None or instant(str(r["date_created"])) <= instant(until))
    ]


@pytest.mark.parametrize("first", [1, 7, 50, 100])
async def test_walking_paymob_returns_every_row_once_in_order(
    first: int, gw: GatewayClient
) -> None:
    nodes = await walk(gw, "paymob-eg", first)
    assert [n["reference"] for n in nodes] == expected_paymob()
    assert len(nodes) == 320
    assert all(len(n["reference"]) == 25 for n in nodes)  # 25-digit refs stay strings


@pytest.mark.parametrize("first", [1, 7, 50, 100])
async def test_walking_muda_and_magma(first: int, gw: GatewayClient) -> None:
    statement = await walk(gw, "muda-ug", first)
    payouts = await walk(gw, "magma", first, NINETY_DAYS)
    assert [n["providerId"] for n in statement] == [r["trans_id"] for r in muda_rows()]
    assert [n["reference"] for n in statement] == [r.get("reference_id") for r in muda_rows()]
    since = instant(NINETY_DAYS["createdFrom"])
    wanted = [
        r
        for r in magma_rows(datetime(2024, 6, 4, 0, 43, 26, tzinfo=UTC))
        if instant(str(r["created_at"])) >= since
    ]
    assert [n["providerId"] for n in payouts] == [r["transfer_token"] for r in wanted]
    assert [n["reference"] for n in payouts] == [r.get("merchant_transaction_id") for r in wanted]


async def test_rows_inserted_upstream_between_pages_cause_no_duplicate_and_no_gap(
    sim: Simulator, clock: FakeClock, gw: GatewayClient
) -> None:
    before = expected_paymob()

    def insert(page: int) -> None:
        if page in (1, 4):
            for i in range(3):
                paymob_fake(sim).ledger.insert(
                    "paymob-eg",
                    {
                        "date_created": f"2024-11-06T1{page}:0{i}:00.000000Z",
                        "initiator": "accept",
                        "recipient": "bills",
                        "amount": 1.5,
                        "transaction_type": "card",
                        "transaction_ref": f"{9 * 10**24 + page * 10 + i:025d}",
                        "status": "SUCCESS",
                    },
                )
            clock.advance(60)  # past the page cache: the next pages are fetched anew

    nodes = await walk(gw, "paymob-eg", 30, between=insert)
    assert [n["reference"] for n in nodes] == before


async def test_first_100_spans_upstream_pages_and_counts_from_upstream(
    sim: Simulator, gw: GatewayClient
) -> None:
    response = await gw.post(PAGE, {"id": "paymob-eg", "first": 100})
    data = response.json()["data"]["transactions"]
    assert len(data["edges"]) == 100 and data["totalCount"] == 320
    assert data["pageInfo"]["hasNextPage"] is True
    assert sim.state.calls_to("paymob-eg", "transactions") == 3  # 50 + 50 + one more to know
    assert "http" not in response.text  # the upstream's next/previous URLs never leave


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2024-04-25T22:00:00Z", "2024-06-10T20:59:59.999999Z"),  # DST start, Cairo midnight
        ("2024-04-25T21:59:59Z", "2024-06-10T21:00:00Z"),  # one second wider each side
        ("2024-10-31T20:00:00Z", "2024-10-31T21:00:00Z"),  # the repeated Cairo hour
        ("2024-10-31T21:00:01Z", "2024-11-06T00:00:00Z"),
    ],
)
async def test_date_filters_cut_exactly_at_instants(
    since: str, until: str, gw: GatewayClient
) -> None:
    flt = {"createdFrom": since, "createdTo": until}
    nodes = await walk(gw, "paymob-eg", 100, flt)
    assert [n["reference"] for n in nodes] == expected_paymob(since, until)
    assert nodes  # each window holds rows


def test_instants_become_inclusive_cairo_dates() -> None:
    from gateway.domain import TransactionFilter

    flt = TransactionFilter(
        created_from=instant("2024-04-25T22:00:00Z"),  # Cairo 26 Apr 01:00
        created_to=instant("2024-10-31T21:30:00Z"),
    )  # Cairo 31 Oct 23:30
    params = paymob_bills.transaction_query(flt, 2)
    assert params == {"page": "2", "size": "50", "date_from": "2024-04-26", "date_to": "2024-10-31"}


async def test_status_type_and_reference_filters(gw: GatewayClient) -> None:
    failed = await walk(
        gw, "paymob-eg", 100, {"statuses": ["FAILED", "UNKNOWN"], "types": ["accept_balance"]}
    )
    one = await walk(gw, "paymob-eg", 5, {"reference": expected_paymob()[17]})
    assert failed and {n["status"] for n in failed} <= {"FAILED", "UNKNOWN"}
    assert {n["type"] for n in failed} == {"accept_balance"}
    assert "REVERSED_BY_BANK" in {n["rawStatus"] for n in failed}
    assert [n["reference"] for n in one] == [expected_paymob()[17]]


@pytest.mark.parametrize("first", [0, -1, 101])
async def test_first_out_of_range_is_validation(
    first: int, sim: Simulator, gw: GatewayClient
) -> None:
    response = await gw.query(PAGE, {"id": "paymob-eg", "first": first})
    assert response["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert sim.state.calls_to("paymob-eg", "transactions") == 0


async def test_bad_cursors_are_validation_errors_never_other_data(gw: GatewayClient) -> None:
    first = (await gw.query(PAGE, {"id": "paymob-eg", "first": 5}))["data"]["transactions"]
    good = first["pageInfo"]["endCursor"]
    payload, signature = good.split(".")
    forged_payload = json.loads(__import__("base64").urlsafe_b64decode(payload + "=="))
    forged_payload["r"] = "0" * 25
    forged = (
        __import__("base64")
        .urlsafe_b64encode(json.dumps(forged_payload).encode())
        .decode()
        .rstrip("=")
    )
    cases = {
        "tampered": f"{forged}.{signature}",
        "truncated": good[: len(good) // 2],
        "garbage": "not-a-cursor",
        "empty signature": f"{payload}.",
        "not ascii": f"{payload}.é{signature[1:]}",  # was an INTERNAL (compare_digest)
    }
    answers = {
        name: await gw.query(PAGE, {"id": "paymob-eg", "first": 5, "after": c})
        for name, c in cases.items()
    }
    foreign = await gw.query(PAGE, {"id": "muda-ug", "first": 5, "after": good})
    other_filter = await gw.query(
        PAGE, {"id": "paymob-eg", "first": 5, "after": good, "filter": {"types": ["card"]}}
    )
    for answer in [*answers.values(), foreign, other_filter]:
        assert answer["data"] is None or answer["data"]["transactions"] is None
        assert answer["errors"][0]["extensions"]["code"] == "VALIDATION"


async def test_old_format_cursors_are_validation_errors() -> None:
    from gateway.services.cursor import Cursors, Position

    cursors = Cursors(b"k" * 32)
    token = cursors.make("a", "f", Position(1.0, "r", 1))
    import base64

    payload, _ = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=="))
    data["v"] = 0
    old = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    signed = f"{old}.{cursors._sign(old)}"
    with pytest.raises(ClientError) as raised:
        cursors.read(signed, "a", "f")
    assert raised.value.code.value == "VALIDATION"


@pytest.mark.parametrize(
    ("account", "fault", "code"),
    [
        ("paymob-eg", {"status": 503}, "UPSTREAM_UNAVAILABLE"),
        ("muda-ug", {"malformed": True}, "UPSTREAM_BAD_RESPONSE"),
        # `{"status": 400, "message": "Failed to fetch transaction history"}` in an HTTP 200.
        ("muda-ug", {"documented_failure": True}, "UPSTREAM_UNAVAILABLE"),
        ("magma", {"status": 429, "retry_after": "30"}, "UPSTREAM_RATE_LIMITED"),
    ],
)
async def test_failures_come_back_in_place(
    account: str, fault: dict[str, Any], code: str, sim: Simulator, gw: GatewayClient
) -> None:
    if fault:
        sim.state.set_faults(account, **fault)
    query = f'{{ account(id: "{account}") {{ id transactions {{ __typename ... on ProviderFailure {{ code }} }} }} }}'
    data = (await gw.query(query))["data"]["account"]
    assert data["transactions"] == {"__typename": "ProviderFailure", "code": code}


async def test_magma_ranges_are_split_into_31_day_calls_and_default_to_7_days(
    sim: Simulator, gw: GatewayClient
) -> None:
    recent = await walk(gw, "magma", 100)
    assert sim.state.calls_to("magma", "history") == 1
    await walk(gw, "magma", 100, NINETY_DAYS)
    assert sim.state.calls_to("magma", "history") == 1 + 3
    assert recent and all(n["createdAt"] >= "2024-05-28" for n in recent)


async def test_magma_gets_the_filters_it_can_apply_exactly_and_the_account_s_range(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = with_account(demo_settings(), "magma", history_days=3, history_window_days=2)
    recording = Recording(sim_transport)
    exact = {"statuses": ["SUCCEEDED"], "currencies": ["GHS"], "channels": ["mobile_money"]}
    async with running_gateway(settings, recording, clock) as gw:
        narrowed = await walk(gw, "magma", 100, {**exact, **NINETY_DAYS})
        asked = recording.requests[0].url.params
        recording.requests.clear()
        pending = await walk(gw, "magma", 100, {"statuses": ["PENDING"]})
    assert (asked["status"], asked["currency"], asked["channel"]) == (
        "success",
        "GHS",
        "mobile_money",
    )
    first = recording.requests[0].url.params
    assert "status" not in first  # PENDING is two raw values: filtered in the gateway only
    assert first["start_date"] == "2024-06-02 00:43:26"  # the 3 days before "now" …
    assert len(recording.requests) == 2  # … in windows of at most 2 days
    assert narrowed and all(
        (n["status"], n["amount"]["currency"]) == ("SUCCEEDED", "GHS") for n in narrowed
    )
    assert pending and all(n["status"] == "PENDING" for n in pending)
    assert {n["rawStatus"] for n in pending} == {"new", "pending"}


async def test_muda_statement_is_fetched_once_per_cache_window(
    sim: Simulator, gw: GatewayClient
) -> None:
    await walk(gw, "muda-ug", 7)
    assert sim.state.calls_to("muda-ug", "statement") == 1


def response(body: object) -> UpstreamResponse:
    return UpstreamResponse(200, {}, json.dumps(body).encode())


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("SUCCESS", "SUCCEEDED"),
        ("success", "SUCCEEDED"),
        ("COMPLETED", "SUCCEEDED"),
        ("PENDING", "PENDING"),
        ("INITIATED", "PENDING"),
        ("failed", "FAILED"),
        ("MINT_FAILED", "FAILED"),
        ("Cancelled", "CANCELLED"),
        ("REFUNDED", "REFUNDED"),
        ("ON_HOLD", "UNKNOWN"),
        (None, "UNKNOWN"),
    ],
)
def test_muda_status_mapping(raw: str | None, status: str) -> None:
    row = {
        "trans_id": "T1",
        "trans_type": "PUSH",
        "amount": "10.5000000",
        "asset_code": "UGX",
        "fee": "0",
        "currency": "UGX",
        "status": raw,
        "created_at": "2024-06-01T10:00:00.000Z",
    }
    page = muda.parse_statement(
        response({"status": 200, "message": "ok", "data": [row]}),
        demo_settings().accounts["muda-ug"],
        UpstreamContext("m", "m"),
    )
    (tx,) = page.rows
    assert (tx.status.value, tx.raw_status) == (status, raw)
    assert str(tx.amount.amount) == "10.5000000" and tx.direction is not None


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("new", "PENDING"),
        ("pending", "PENDING"),
        ("success", "SUCCEEDED"),
        ("FAILED", "FAILED"),
        ("refunded", "REFUNDED"),
        ("cancelled", "CANCELLED"),
        ("on_hold", "UNKNOWN"),
    ],
)
def test_magma_status_mapping(raw: str, status: str) -> None:
    body = {
        "code": 200,
        "message": "OK",
        "data": [
            {
                "transfer_token": "t",
                "merchant_transaction_id": "R1",
                "amount": 100,
                "currency": "XOF",
                "status": raw,
                "created_at": "2024-06-01T10:00:00.000000Z",
            }
        ],
    }
    (tx,) = magma_onepay.parse_history(
        json.dumps(body).encode(), demo_settings().accounts["magma"], UpstreamContext("m", "m")
    )
    assert (tx.status.value, tx.raw_status) == (status, raw)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("SUCCESS", TransactionStatus.SUCCEEDED),
        ("PENDING", TransactionStatus.PENDING),
        ("FAILED", TransactionStatus.FAILED),
        ("REVERSED_BY_BANK", TransactionStatus.UNKNOWN),
    ],
)
def test_paymob_status_mapping_and_refs_stay_strings(raw: str, status: TransactionStatus) -> None:
    body = {
        "count": 1,
        "next": "https://x/?page=2",
        "previous": None,
        "results": [
            {
                "date_created": "2023-03-16T15:11:47.016912Z",
                "initiator": "accept",
                "recipient": "bills",
                "amount": 10.0,
                "transaction_ref": "6269928401296462697948221",
                "transaction_type": "card",
                "status": raw,
            }
        ],
    }
    page = paymob_bills.parse_transactions(
        json.dumps(body).encode(),
        demo_settings().accounts["paymob-eg"],
        UpstreamContext("p", "p"),
        1,
    )
    (tx,) = page.rows
    assert tx.status is status and tx.reference == "6269928401296462697948221"
    assert page.next_page == 2 and page.total == 1
    first: dict[str, Any] = body["results"][0]  # type: ignore[index]
    numeric = dict(body, results=[dict(first, transaction_ref=6269928401296462697948221)])
    with pytest.raises(UpstreamError) as raised:
        paymob_bills.parse_transactions(
            json.dumps(numeric).encode(),
            demo_settings().accounts["paymob-eg"],
            UpstreamContext("p", "p"),
            1,
        )
    assert raised.value.code.value == "UPSTREAM_BAD_RESPONSE"


@pytest.mark.parametrize(
    "flt",
    [
        {"createdFrom": "0001-01-01T00:00:00Z"},
        {"createdTo": "9999-12-31T23:59:59Z"},
        {"createdFrom": "2024-06-02T00:00:00Z", "createdTo": "2024-06-01T00:00:00Z"},
    ],
)
async def test_absurd_date_ranges_are_validation_errors(
    flt: dict[str, str], sim: Simulator, gw: GatewayClient
) -> None:
    answer = await gw.query(PAGE, {"id": "magma", "filter": flt})
    assert answer["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert sim.state.calls_to("magma", "history") == 0


async def test_a_long_sparse_range_is_walked_in_bounded_steps(
    sim: Simulator, gw: GatewayClient
) -> None:
    flt = {
        "createdFrom": "2021-06-01T00:00:00Z",
        "createdTo": "2024-06-04T00:00:00Z",
        "reference": "PAYOUT-000003",
    }
    first = (await gw.query(PAGE, {"id": "magma", "filter": flt}))["data"]["transactions"]
    calls_first = sim.state.calls_to("magma", "history")
    rest = await walk(gw, "magma", 20, flt)
    assert calls_first == 24  # one request never asks more than 24 upstream pages
    assert first["pageInfo"]["hasNextPage"] is True
    assert [n["reference"] for n in rest] == ["PAYOUT-000003"]
