"""Secret values (passwords) that must never reach a log line or a diagnostic — and redaction that never
mangles a message.

The provider sets the secrets of the configuration it runs with (``set_secrets``: replaced at every
ConfigureProvider, never accumulated); the logging filter and the diagnostics converter ``redact`` text.

A secret of 4 characters or more is replaced wherever it appears. A shorter one (a lab password such as
``p``) would turn "vSphere" into "vS***here" if replaced as a substring, and hides nothing anyway; it is
only replaced where a password appears whole: URL user-info (``https://user:p@host``), an ``Authorization``
header, and a settings echo such as ``password = "p"`` or ``password: p``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

__all__ = ["set_secrets", "register_secret", "redact", "secrets_registered", "REDACTED", "MIN_SUBSTRING"]

REDACTED = "***"
MIN_SUBSTRING = 4  # shorter secrets are redacted only where they stand whole
_lock = threading.Lock()
_values: tuple[str, ...] = ()
_long: tuple[str, ...] = ()
_whole: tuple[re.Pattern[str], ...] = ()


def _patterns(secret: str) -> tuple[re.Pattern[str], ...]:
    s = re.escape(secret)
    return (
        re.compile(rf"(://[^\s:/@]*:){s}(@)"),  # URL user-info
        re.compile(rf"(?i)(authorization:\s*\S+\s+){s}(?=\s|$)"),  # an auth header's credentials
        re.compile(rf"(?i)(\bpass(?:word|wd)?\b[\"']?\s*[:=]\s*[\"']?){s}(?=[\"'\s,;}}]|$)"),  # settings echo
    )


def set_secrets(values: Iterable[str | None]) -> None:
    """The secrets of the configuration now in force (replaces any set before)."""
    global _values, _long, _whole
    kept = tuple(dict.fromkeys(v for v in values if isinstance(v, str) and v))
    with _lock:
        _values = kept
        _long = tuple(sorted((v for v in kept if len(v) >= MIN_SUBSTRING), key=len, reverse=True))
        _whole = tuple(p for v in kept if len(v) < MIN_SUBSTRING for p in _patterns(v))


def register_secret(value: str | None) -> None:
    """Add one secret to those in force (for code that learns one secret at a time)."""
    set_secrets([*_values, value])


def redact(text: str) -> str:
    for secret in _long:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _whole:
        text = pattern.sub(lambda m: m.group(1) + REDACTED + (m.group(2) or "" if m.lastindex == 2 else ""), text)
    return text


def secrets_registered() -> bool:
    return bool(_long or _whole)
