"""TLS to the parts the replicas share — Redis (`[cache]`) and PostgreSQL
(`[idempotency]`): the CA that signs the server's certificate, and optionally a client
certificate with its key. Paths relative to the config file's folder; each must be a
readable file when the settings load, so a typo is a start-up error, not a handshake that
fails later."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.checker import Checker

TLS_KEYS = ("ca_file", "cert_file", "key_file")


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path | None = None  # None: the system's trusted CAs
    cert_file: Path | None = None  # a client certificate (with key_file), if the server asks
    key_file: Path | None = None

    @property
    def any(self) -> bool:
        return any((self.ca_file, self.cert_file, self.key_file))


def tls_files(check: Checker, raw: Mapping[str, Any], location: str) -> TlsFiles:
    """`ca_file`, `cert_file` and `key_file` from `raw` (each optional; the last two
    together), every problem reported under `location`."""
    found: dict[str, Path | None] = {}
    for key in TLS_KEYS:
        found[key] = None
        if key not in raw:
            continue
        text = check.string(raw, key, location)
        if not text:
            check.add(f"{location}.{key}", "must name a file", f'{key} = "/etc/tls/…"')
            continue
        path = check.path(text)
        if not path.is_file():
            check.add(
                f"{location}.{key}",
                f"no readable file at {path}",
                "check the path (relative paths start at the config file's folder)",
            )
            continue
        found[key] = path
    if ("cert_file" in raw) != ("key_file" in raw):
        check.add(
            f"{location}.cert_file",
            "a client certificate needs both cert_file and key_file",
            "give both, or neither",
        )
    return TlsFiles(**found)
