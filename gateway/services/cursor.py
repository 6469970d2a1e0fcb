"""Opaque, signed pagination cursors.

A cursor names the account, the filter (its canonical text), the position of the last row
returned — (createdAt, id), newest first — and the upstream page that row came
from. It is base64url JSON plus an HMAC-SHA256 under `[server] cursor_secret`, which
replicas share. Anything forged, truncated, of another version, or minted for another
account or filter is refused as VALIDATION — never a 500, never another account's rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from gateway.errors import ClientError

VERSION = 2  # 2: the tie-break is the row id (was its reference)
INVALID = "The cursor is not valid for this query; start again without `after`."


@dataclass(frozen=True)
class Position:
    created: float  # epoch seconds of the last row's createdAt (0 when it had none)
    row_id: str  # the last row's id: rows with the same createdAt sort by it
    page: int  # the upstream page that row came from


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Cursors:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def make(self, account: str, filter_key: str, position: Position) -> str:
        body = json.dumps(
            {
                "v": VERSION,
                "a": account,
                "f": _digest(filter_key),
                "c": position.created,
                "r": position.row_id,
                "p": position.page,
            },
            separators=(",", ":"),
        )
        payload = _b64(body.encode())
        return f"{payload}.{self._sign(payload)}"

    def read(self, cursor: str, account: str, filter_key: str) -> Position:
        payload, _, signature = cursor.partition(".")
        if (
            not signature
            or not cursor.isascii()
            or not hmac.compare_digest(signature, self._sign(payload))
        ):
            raise ClientError(INVALID)
        try:
            data = json.loads(_unb64(payload))
            if data["v"] != VERSION or data["a"] != account or data["f"] != _digest(filter_key):
                raise ClientError(INVALID)
            position = Position(float(data["c"]), str(data["r"]), int(data["p"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise ClientError(INVALID) from None
        if position.page < 1:
            raise ClientError(INVALID)
        return position


def _digest(filter_key: str) -> str:
    return hashlib.sha256(filter_key.encode()).hexdigest()[:16]
