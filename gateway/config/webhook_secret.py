"""Webhook signing secrets in the Standard Webhooks format: `whsec_` then the base64 of
24 to 64 random bytes — what Svix and the `standardwebhooks` libraries make and read, so a
receiver verifies our events with them as they are.

Pure: `webhook_key` is the key the signer uses (the decoded bytes, never the text), and
`new_webhook_secret` is what `balance-gateway webhooks secret` prints. No message here
ever contains the secret.
"""

from __future__ import annotations

import base64
import binascii
import secrets

PREFIX = "whsec_"
MIN_BYTES = 24
MAX_BYTES = 64
NEW_BYTES = 32
FORMAT = f"{PREFIX} then the base64 of {MIN_BYTES} to {MAX_BYTES} random bytes"


def webhook_key(secret: str) -> bytes:
    """The HMAC key a `whsec_…` secret stands for (the base64-decoded bytes after the
    prefix); `ValueError` naming what is wrong (never the secret) for anything else."""
    if not secret.startswith(PREFIX):
        raise ValueError(f"does not start with {PREFIX}")
    text = secret[len(PREFIX) :]
    try:  # standard base64; its padding may be left out, as those libraries allow
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"not base64 after {PREFIX}") from None
    if not MIN_BYTES <= len(key) <= MAX_BYTES:
        raise ValueError(f"{len(key)} bytes after {PREFIX}: {MIN_BYTES} to {MAX_BYTES} needed")
    return key


def new_webhook_secret() -> str:
    """A fresh secret: `whsec_` and the base64 of 32 bytes from `secrets.token_bytes`."""
    return PREFIX + base64.b64encode(secrets.token_bytes(NEW_BYTES)).decode("ascii")
