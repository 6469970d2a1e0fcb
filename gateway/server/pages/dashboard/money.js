// Amounts exactly as the gateway sends them (decimal strings), formatted for people:
// digits grouped by three, never through a float.
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

export function money(value) {
  return value ? `${grouped(value.amount)} ${value.currency}` : "—";
}

// How long ago an ISO time was, in words a person reads at a glance.
export function age(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}
