"""Standard Webhooks signatures (https://www.standardwebhooks.com), through its reference library."""

import base64
import secrets
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def headers(message_id: str, body: str, secrets_: list[str], at: datetime) -> dict[str, str]:
    """The headers of one attempt: one `v1,` signature per secret (two while a rotation's overlap lasts)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets_),
        "content-type": "application/json",
        "user-agent": "Fieldbook-Webhooks/1.0",
    }
