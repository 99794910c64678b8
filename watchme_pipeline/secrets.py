"""Keep secrets out of what we record: failure messages, logs and metadata."""

from __future__ import annotations

import re
from collections.abc import Mapping

import dagster as dg

SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "SUPABASE_KEY",
               "OPENAI_API_KEY", "WATCHME_ALERT_EMAIL_PASSWORD", "WATCHME_ALERT_WEBHOOK_URL")
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+):(?P<pw>[^@\s]+)@", re.I)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._\-]{8,}")


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """Replace known secret values, URL passwords and bearer tokens with ***. The values are
    the ones the resources get, through Dagster's ``EnvVar`` (or from ``env``, in tests)."""
    for var in SECRET_VARS:
        value = dg.EnvVar(var).get_value() if env is None else env.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}:***@", text)
    return _BEARER.sub(r"\1***", text)
