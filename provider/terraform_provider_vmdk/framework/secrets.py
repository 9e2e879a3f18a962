"""Secret values (passwords) that must never reach a log line or a diagnostic.

The provider registers a secret as soon as it knows it (config or environment); the logging filter and
the diagnostics converter redact every registered value. A process-wide registry is right here: one
provider process serves one provider configuration.
"""

from __future__ import annotations

import threading

__all__ = ["register_secret", "redact", "secrets_registered", "REDACTED"]

REDACTED = "***"
_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    global _secrets
    if not value or not isinstance(value, str):
        return
    with _lock:
        if value not in _secrets:
            _secrets = tuple(sorted((*_secrets, value), key=len, reverse=True))


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def secrets_registered() -> bool:
    return bool(_secrets)
