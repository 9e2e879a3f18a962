"""hclog-compatible JSON logging on stderr, plus secret redaction.

Terraform reads provider stderr line by line; a line that is a JSON object with
``@level``, ``@message`` and ``@timestamp`` (go-hclog's TimeFormatJSON,
``2006-01-02T15:04:05.000000Z07:00``) becomes a structured log entry and any
other keys become fields. Terraform only shows them when TF_LOG_PROVIDER or
TF_LOG is set, so we use the same variables to avoid formatting lines nobody
will see.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

MODULE = "provider.terraform-provider-vmdk"
PACKAGE_LOGGER = "terraform_provider_vmdk"
OFF = logging.CRITICAL + 10
MAX_LINE = 60 * 1024  # Terraform's line scanner stops at 64 KiB

_LEVELS = {"TRACE": TRACE, "JSON": TRACE, "DEBUG": logging.DEBUG, "INFO": logging.INFO,
           "WARN": logging.WARNING, "WARNING": logging.WARNING, "ERROR": logging.ERROR, "OFF": OFF}

# Attributes every LogRecord has; anything else came from ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def level_from_env(env: Mapping[str, str] | None = None) -> int:
    """TF_LOG_PROVIDER wins over TF_LOG; unset means WARN and above.

    Unknown values count as TRACE, as Terraform itself treats them.
    """
    env = os.environ if env is None else env
    for key in ("TF_LOG_PROVIDER", "TF_LOG"):
        value = (env.get(key) or "").strip().upper()
        if value:
            return _LEVELS.get(value, TRACE)
    return logging.WARNING


def hclog_level(levelno: int) -> str:
    if levelno <= TRACE:
        return "trace"
    if levelno <= logging.DEBUG:
        return "debug"
    if levelno <= logging.INFO:
        return "info"
    if levelno <= logging.WARNING:
        return "warn"
    return "error"


def hclog_timestamp(created: float) -> str:
    """Local time in Go's ``2006-01-02T15:04:05.000000Z07:00`` layout ('Z' for UTC).

    Built with ``time`` rather than ``datetime`` to keep start-up imports small.
    """
    seconds = int(created)
    micros = round((created - seconds) * 1_000_000)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    local = time.localtime(seconds)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{micros:06d}"
    offset = local.tm_gmtoff // 60
    if not offset:
        return text + "Z"
    sign = "+" if offset > 0 else "-"
    offset = abs(offset)
    return f"{text}{sign}{offset // 60:02d}:{offset % 60:02d}"


class HclogJSONFormatter(logging.Formatter):
    """One JSON object per line in go-hclog's shape; ``extra`` keys become fields."""

    def format(self, record: logging.LogRecord) -> str:
        import json  # first log line pays for it, not every start

        entry: dict[str, Any] = {
            "@level": hclog_level(record.levelno),
            "@message": record.getMessage(),
            "@module": MODULE,
            "@timestamp": hclog_timestamp(record.created),
        }
        if not record.name.startswith(PACKAGE_LOGGER):
            entry["logger"] = record.name
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["error"] = record.exc_text
        line = json.dumps(entry, default=str)
        if len(line) > MAX_LINE:
            entry["@message"] = entry["@message"][: MAX_LINE // 2] + "...(truncated)"
            entry.pop("error", None)
            line = json.dumps(entry, default=str)[:MAX_LINE]
            if not line.endswith("}"):  # still too long: keep the line valid JSON
                line = json.dumps({k: entry[k] for k in ("@level", "@message", "@module", "@timestamp")})
        return line


# ---------------------------------------------------------------- redaction
# One registry for the whole process (the framework's), so a secret the provider registers is redacted
# both in diagnostics and in log lines.
from ..framework.secrets import REDACTED, redact, register_secret, secrets_registered  # noqa: E402,F401 - re-exported


class RedactingFilter(logging.Filter):
    """Rewrites the rendered message (msg % args) and string ``extra`` fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not secrets_registered():
            return True
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                record.__dict__[key] = redact(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Always writes to the *current* sys.stderr (tests and redirections swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:  # noqa: D401
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


_handler: logging.Handler | None = None


def configure_logging(env: Mapping[str, str] | None = None) -> logging.Handler:
    """Install the JSON handler (idempotent) and set levels from the environment.

    Our package logger gets the configured level; the root logger gets the same
    handler at WARN or above so third-party warnings (grpc, urllib3, ...) still
    arrive as JSON instead of stray plain-text lines.
    """
    global _handler
    level = level_from_env(env)
    if _handler is None:
        handler = _StderrHandler()
        handler.setFormatter(HclogJSONFormatter())
        handler.addFilter(RedactingFilter())
        _handler = handler
        pkg = logging.getLogger(PACKAGE_LOGGER)
        pkg.addHandler(handler)
        pkg.propagate = False
        logging.getLogger().addHandler(handler)
    logging.getLogger(PACKAGE_LOGGER).setLevel(level)
    logging.getLogger().setLevel(max(level, logging.WARNING))
    return _handler
