// Amounts exactly as the gateway sends them (decimal strings), formatted for people:
// digits grouped by three, never through a float; trailing zeros past the currency's minor
// unit dropped (Muda's ledger writes 7 decimals: 4621.0000000 UGX is 4,621 UGX), a
// non-zero digit never.
export function grouped(amount) {
  const negative = amount.startsWith("-");
  const [whole, fraction] = (negative ? amount.slice(1) : amount).split(".");
  let out = "";
  for (let i = 0; i < whole.length; i++) {
    if (i > 0 && (whole.length - i) % 3 === 0) out += ",";
    out += whole[i];
  }
  return (negative ? "-" : "") + out + (fraction !== undefined ? "." + fraction : "");
}

// ISO 4217 minor units of the currencies the providers answer in; 2 for any other.
const MINOR_UNITS = { XOF: 0, XAF: 0, GNF: 0, UGX: 0, RWF: 0, KES: 2, TZS: 2, GHS: 2,
  EGP: 2, SLE: 2, CDF: 2, NGN: 2, ZMW: 2, MWK: 2, USD: 2, EUR: 2 };

export function trimmed(amount, currency) {
  const [whole, fraction] = amount.split(".");
  if (fraction === undefined) return amount;
  const minor = MINOR_UNITS[currency] ?? 2;
  let keep = fraction.length;
  while (keep > minor && fraction[keep - 1] === "0") keep -= 1;
  return keep === 0 ? whole : `${whole}.${fraction.slice(0, keep)}`;
}

export function money(value) {
  return value ? `${grouped(trimmed(value.amount, value.currency))} ${value.currency}` : "—";
}

// How long ago an ISO time was, in words a person reads at a glance.
export function age(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}
