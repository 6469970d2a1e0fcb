// The balances page: every balance this key may see, refreshed every 15 seconds, with
// levels, stale and failure badges, history and runway, and a top-up form; and each
// account's close of yesterday (a key with transactions:read), read at load and hourly. The key is
// entered once, kept in sessionStorage (this tab only) and sent as a header — never in a
// URL. Amounts are the gateway's exact strings (money.js): no float arithmetic here.
import { age, grouped, money } from "./money.js";

const KEY = "balance-gateway-key";
const REFRESH_MS = 15000;
const QUERY = `query Dashboard {
  balances {
    complete
    totals { currency kind total { amount currency } available { amount currency } }
    reportingTotals {
      kind available { amount currency } approximate rounding
      converted { approximate asOf } unconverted { currency }
    }
    results {
      __typename
      ... on AccountBalance {
        account { id label provider capabilities }
        fetchedAt stale staleReason { code message }
        balances {
          id asset { code kind issuer } country { code name }
          total { amount currency } available { amount currency }
          level thresholds { warning { amount currency } critical { amount currency } }
          history(every: 3600) { at available { amount } synthetic }
          runway { zeroAt burnPerDay { amount currency } }
        }
      }
      ... on ProviderFailure { account { id label provider } code message retryAfterSeconds }
    }
  }
}`;
const CLOSE = `query DailyClose {
  dailyClose {
    account { id label } day zone problem
    statements {
      balanceId currency coverage status closing unexplained missing
      findings { kind amount note }
    }
  }
}`;
const CLOSE_REFRESH_MS = 3600000;
const TOP_UP = `mutation TopUp($input: TopUpInput!) {
  topUp(input: $input) {
    __typename
    ... on TopUpSucceeded { replayed transaction { amount { amount currency } status } }
    ... on TopUpPending { message idempotencyKey }
    ... on TopUpRejected { code message retryable }
  }
}`;

const $ = (selector, root = document) => root.querySelector(selector);
const status = (text) => { $("#status").textContent = text; };

async function graphql(query, variables) {
  const headers = { "Content-Type": "application/json", Accept: "application/graphql-response+json" };
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch("/graphql", {
    method: "POST", headers, body: JSON.stringify({ query, variables }),
  });
  const answer = await response.json();
  if (!response.ok || !answer.data) {
    const error = (answer.errors || [])[0] || {};
    throw new Error(`${error.message || response.statusText} (${(error.extensions || {}).code || response.status})`);
  }
  return answer;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function badge(kind, text, title) {
  const node = element("span", `badge ${kind}`, text);
  if (title) node.title = title;
  return node;
}

// A line of the hourly history, drawn with SVG attributes (the page's policy allows no
// inline styles); the amounts are scaled for the picture only, never shown from it.
function sparkline(points) {
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", "0 0 120 30");
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  const values = points.map((p) => Number(p.available.amount));
  const low = Math.min(...values), high = Math.max(...values);
  const span = high - low || 1;
  const step = values.length > 1 ? 120 / (values.length - 1) : 0;
  const line = document.createElementNS(svgNS, "polyline");
  line.setAttribute("points", values.map((v, i) => `${(i * step).toFixed(1)},${(28 - ((v - low) / span) * 26).toFixed(1)}`).join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "currentColor");
  line.setAttribute("stroke-width", "1.5");
  svg.append(line);
  const first = points[0].available.amount, last = points[points.length - 1].available.amount;
  svg.setAttribute("aria-label", `History: ${grouped(first)} to ${grouped(last)} over ${points.length} hours`);
  return svg;
}

// What tells a balance from its neighbours: its asset and kind, and the country of a
// corridor (Magma) or the issuer of a ledger asset (Muda, collateral included).
function label(balance) {
  const parts = [balance.asset.code, balance.asset.kind.toLowerCase().replace("_", " ")];
  if (balance.country) parts.push(balance.country.name);
  if (balance.asset.issuer) parts.push(`issuer ${balance.asset.issuer}`);
  return parts.join(" · ");
}

function balanceItem(balance) {
  const item = element("li", `balance level-${(balance.level || "none").toLowerCase()}`);
  item.dataset.balance = balance.id;
  const head = element("p", "line");
  head.append(element("span", "asset", label(balance)));
  const figure = element("span", "figure");
  figure.append(element("span", "amount", money(balance.available)));
  figure.append(element("span", "what", "available"));
  head.append(figure);
  if (balance.level) {
    head.append(badge(`level ${balance.level.toLowerCase()}`, balance.level,
      `warning at ${money(balance.thresholds.warning)}, critical at ${money(balance.thresholds.critical)}`));
  }
  item.append(head);
  item.append(element("p", "total", `of ${money(balance.total)} total`));
  if (balance.history.length > 1) item.append(sparkline(balance.history));
  if (balance.history.some((point) => point.synthetic)) {
    item.append(element("p", "made-up", "history before the demo started is made up"));
  }
  if (balance.runway) {
    const when = new Date(balance.runway.zeroAt);
    item.append(element("p", "runway",
      `runs out around ${when.toISOString().slice(0, 16).replace("T", " ")} UTC at ${money(balance.runway.burnPerDay)} a day`));
  }
  return item;
}

function accountCard(result) {
  const card = $("#account-card").content.firstElementChild.cloneNode(true);
  card.dataset.account = result.account.id;
  $(".label", card).textContent = result.account.label;
  $(".provider", card).textContent = result.account.provider.toLowerCase().replace("_", " ");
  const badges = $(".badges", card);
  if (result.__typename === "ProviderFailure") {
    card.classList.add("failing");
    $(".age", card).textContent = "no data";
    badges.append(badge("failure", `failing: ${result.code}`, result.message));
    badges.append(element("span", "reason", result.message));
    return card;
  }
  $(".age", card).textContent = `read ${age(result.fetchedAt)}`;
  if (result.stale) {
    badges.append(badge("stale", `stale: ${result.staleReason.code}`, result.staleReason.message));
    badges.append(element("span", "reason", result.staleReason.message));
  }
  const list = $(".balances", card);
  for (const balance of result.balances) list.append(balanceItem(balance));
  if (result.account.capabilities.includes("TOP_UP")) armTopUp($(".topup", card), result.account.id);
  return card;
}

// A top-up: one idempotency key per attempt, kept (per account, across redraws) until the
// gateway has answered it, so a double click — or a retry after a timeout — can never
// credit twice. Outcomes survive the refresh that follows them.
const topUpKeys = new Map();
const outcomes = new Map();
const sending = new Set();

function armTopUp(form, accountId) {
  form.hidden = false;
  const outcome = $(".outcome", form);
  const say = (text) => { outcomes.set(accountId, text); outcome.textContent = text; };
  outcome.textContent = outcomes.get(accountId) || "";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (sending.has(accountId)) return;
    sending.add(accountId);
    if (!topUpKeys.has(accountId)) topUpKeys.set(accountId, crypto.randomUUID());
    const button = $("button", form);
    button.disabled = true;
    say("Sending…");
    const data = new FormData(form);
    try {
      const answer = await graphql(TOP_UP, { input: {
        accountId, amount: data.get("amount"), paymentMethod: data.get("method"),
        paymentReference: data.get("reference"), idempotencyKey: topUpKeys.get(accountId),
      } });
      const result = answer.data.topUp;
      if (result.__typename === "TopUpSucceeded") {
        say(`Credited ${money(result.transaction.amount)}${result.replayed ? " (already done)" : ""}.`);
        topUpKeys.delete(accountId);
        refresh();
      } else if (result.__typename === "TopUpPending") {
        say(`Pending: ${result.message} The provider's answer did not arrive, so the gateway will not guess; do not top up again — an operator resolves key ${result.idempotencyKey}.`);
        topUpKeys.delete(accountId);
      } else {
        say(`Refused (${result.code}): ${result.message}`);
        if (!result.retryable) topUpKeys.delete(accountId);
      }
    } catch (error) {
      say(`Not sent: ${error.message}. Submitting again reuses the same key.`);
    } finally {
      sending.delete(accountId);
      button.disabled = false;
    }
  });
}

// A kind's total in the reporting currency ([reporting] currency; none: not shown): "≈"
// and the rates' date when a market rate went into it, the currencies left out named.
function reportingTotal(t) {
  const item = element("li", "total reporting");
  const kind = t.kind.toLowerCase().replace("_", " ");
  item.append(element("span", "kind", `All in ${t.available.currency} · ${kind}`));
  item.append(element("span", "amount", `${t.approximate ? "≈ " : ""}${money(t.available)}`));
  const dates = [...new Set(t.converted.filter((c) => c.approximate).map((c) => c.asOf))];
  const notes = [];
  if (dates.length) notes.push(`rates as of ${dates.join(", ")}`);
  else notes.push("exact (fixed parity)");
  if (t.unconverted.length) notes.push(`not converted: ${t.unconverted.map((u) => u.currency).join(", ")}`);
  notes.push(`rounded ${t.rounding}`);
  item.append(element("span", "note", notes.join(" · ")));
  return item;
}

// Yesterday's close: per balance its status, unexplained amount and closing, and in
// words why a day is INCOMPLETE or shows only the balance's change.
const COVERAGE = {
  NONE: "The provider publishes no statement: only the change of the balance is known.",
  DEBITS: "The statement lists money out only; money in is in no statement.",
  CREDITS: "The statement lists money in only; money out is in no statement.",
};

function explanation(statement) {
  if (statement.status === "INCOMPLETE") {
    return `Incomplete — ${statement.missing.join("; ")}.`;
  }
  if (statement.status === "BALANCE_DELTA_ONLY") return COVERAGE[statement.coverage] || "";
  if (statement.status === "RECONCILED") return "Opening plus the statement's movements is the closing, to the last digit.";
  return statement.findings
    .map((f) => `${f.kind.replaceAll("_", " ").toLowerCase()}: ${money({ amount: f.amount, currency: statement.currency })} — ${f.note}`)
    .join("; ") || "A difference no finding explains.";
}

function closeItem(statement) {
  const item = element("li", `balance close-${statement.status.toLowerCase()}`);
  item.dataset.balance = statement.balanceId;
  const head = element("p", "line");
  head.append(element("span", "asset", statement.balanceId));
  head.append(badge(`close ${statement.status.toLowerCase()}`, statement.status));
  item.append(head);
  const figures = element("dl", "figures");
  for (const [name, value] of [["Unexplained", statement.unexplained], ["Closing", statement.closing]]) {
    figures.append(element("dt", "", name));
    const figure = element("dd", `amount ${name.toLowerCase()}`,
      value === null ? "—" : money({ amount: value, currency: statement.currency }));
    figure.dataset.amount = value === null ? "" : value; // the gateway's exact figure
    figures.append(figure);
  }
  item.append(figures);
  item.append(element("p", "why", explanation(statement)));
  return item;
}

function closeCard(close) {
  const card = element("article", "card");
  card.dataset.closeAccount = close.account.id;
  const header = element("header");
  header.append(element("h3", "label", close.account.label));
  header.append(element("p", "meta day", `${close.day} · ${close.zone}`));
  card.append(header);
  if (close.problem) {
    card.append(element("p", "why", `No close: ${close.problem}.`));
    return card;
  }
  const list = element("ul", "balances");
  list.append(...close.statements.map(closeItem));
  card.append(list);
  return card;
}

async function refreshClose() {
  const section = $("#close");
  try {
    const answer = await graphql(CLOSE);
    $("#closes").replaceChildren(...answer.data.dailyClose.map(closeCard));
    section.hidden = false;
  } catch (error) {
    section.hidden = true; // a key without transactions:read does not see the close
    $("#closes").replaceChildren();
  }
}

function render(report) {
  const totals = $("#totals");
  totals.replaceChildren(...report.totals.map((t) => {
    const item = element("li", "total");
    item.append(element("span", "kind", `${t.currency} · ${t.kind.toLowerCase().replace("_", " ")}`));
    item.append(element("span", "amount", money(t.available)));
    return item;
  }), ...report.reportingTotals.map(reportingTotal));
  const accounts = $("#accounts");
  const open = document.activeElement && document.activeElement.closest(".topup");
  if (open) return; // never redraw under someone typing a top-up
  accounts.replaceChildren(...report.results.map(accountCard));
}

async function refresh() {
  try {
    const answer = await graphql(QUERY);
    render(answer.data.balances);
    const failing = answer.data.balances.results.filter((r) => r.__typename === "ProviderFailure").length;
    status(`Updated ${new Date().toISOString().slice(11, 19)} UTC${failing ? ` · ${failing} failing` : ""}`);
  } catch (error) {
    status(`Could not load balances: ${error.message}`);
  }
}

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("#key").value.trim();
  if (key) sessionStorage.setItem(KEY, key);
  $("#key").value = "";
  refresh();
  refreshClose();
});
$("#forget").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  $("#accounts").replaceChildren();
  $("#totals").replaceChildren();
  $("#closes").replaceChildren();
  $("#close").hidden = true;
  status("Key forgotten.");
});

refresh();
refreshClose();
setInterval(refresh, REFRESH_MS);
setInterval(refreshClose, CLOSE_REFRESH_MS);
