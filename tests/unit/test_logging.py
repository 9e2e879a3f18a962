"""hclog-style JSON logs on stderr: format, levels from TF_LOG*, redaction."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys

import pytest

from terraform_provider_vmdk.plugin import logging_setup as ls

# Go's 2006-01-02T15:04:05.000000Z07:00
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")


@pytest.mark.parametrize(
    "env, level",
    [
        ({}, logging.WARNING),
        ({"TF_LOG": "DEBUG"}, logging.DEBUG),
        ({"TF_LOG": "trace"}, ls.TRACE),
        ({"TF_LOG": "JSON"}, ls.TRACE),
        ({"TF_LOG": "OFF"}, ls.OFF),
        ({"TF_LOG": "bogus"}, ls.TRACE),
        ({"TF_LOG": "DEBUG", "TF_LOG_PROVIDER": "ERROR"}, logging.ERROR),
        ({"TF_LOG": "ERROR", "TF_LOG_PROVIDER": "INFO"}, logging.INFO),
        ({"TF_LOG_PROVIDER": "WARN"}, logging.WARNING),
    ],
)
def test_level_from_env(env: dict[str, str], level: int) -> None:
    assert ls.level_from_env(env) == level


def test_timestamp_layout() -> None:
    stamp = ls.hclog_timestamp(1_700_000_000.123456)
    assert TIMESTAMP.match(stamp), stamp
    assert ".123456" in stamp


def test_timestamp_utc_uses_z(monkeypatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    try:
        assert ls.hclog_timestamp(0.5) == "1970-01-01T00:00:00.500000Z"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def _record(msg: str, *args, level: int = logging.INFO, **extra) -> logging.LogRecord:
    logger = logging.getLogger("terraform_provider_vmdk.test")
    return logger.makeRecord(logger.name, level, __file__, 1, msg, args, None, extra=extra)


def test_json_line_shape() -> None:
    line = ls.HclogJSONFormatter().format(_record("created %s", "vol-1", level=logging.WARNING, datastore="ds1"))
    entry = json.loads(line)
    assert entry["@level"] == "warn"
    assert entry["@message"] == "created vol-1"
    assert entry["@module"] == "provider.terraform-provider-vmdk"
    assert TIMESTAMP.match(entry["@timestamp"])
    assert entry["datastore"] == "ds1"
    assert "\n" not in line


def test_levels_map_to_hclog_names() -> None:
    fmt = ls.HclogJSONFormatter()
    names = [json.loads(fmt.format(_record("m", level=lv)))["@level"]
             for lv in (ls.TRACE, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)]
    assert names == ["trace", "debug", "info", "warn", "error", "error"]


def test_overlong_message_is_truncated_to_valid_json() -> None:
    line = ls.HclogJSONFormatter().format(_record("x" * 200_000))
    assert len(line) <= ls.MAX_LINE
    assert json.loads(line)["@message"].endswith("(truncated)")


def test_secret_redaction_in_message_args_and_extra() -> None:
    ls.register_secret("hunter2-s3cr3t")
    ls.register_secret("")  # ignored
    rec = _record("login %s with %r", "admin", "hunter2-s3cr3t", password="hunter2-s3cr3t", note="pw=hunter2-s3cr3t!")
    ls.RedactingFilter().filter(rec)
    entry = json.loads(ls.HclogJSONFormatter().format(rec))
    assert "hunter2" not in json.dumps(entry)
    assert entry["@message"] == "login admin with '***'"
    assert entry["password"] == "***" and entry["note"] == "pw=***!"


def test_secret_redaction_in_exceptions() -> None:
    ls.register_secret("tok-987654")
    logger = logging.getLogger("terraform_provider_vmdk.test")
    try:
        raise RuntimeError("auth failed for tok-987654")
    except RuntimeError:
        rec = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    ls.RedactingFilter().filter(rec)
    line = ls.HclogJSONFormatter().format(rec)
    assert "tok-987654" not in line and "***" in json.loads(line)["error"]


SCRIPT = """
import logging
from terraform_provider_vmdk.plugin.logging_setup import configure_logging, register_secret, TRACE
configure_logging()
register_secret("pa55word")
log = logging.getLogger("terraform_provider_vmdk.resources.volume")
log.log(TRACE, "trace line")
log.debug("debug line")
log.info("info line", extra={"volume": "v1"})
log.warning("warn line password=%s", "pa55word")
log.error("error line")
logging.getLogger("urllib3").warning("third party warning")
logging.getLogger("urllib3").info("third party info")
"""


def run_logging(env_extra: dict[str, str]) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env.update(env_extra)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    return [json.loads(line) for line in proc.stderr.splitlines()]


def test_process_level_filtering_default_warn() -> None:
    entries = run_logging({})
    assert [e["@message"] for e in entries] == ["warn line password=***", "error line", "third party warning"]
    assert entries[-1]["logger"] == "urllib3"


def test_process_level_filtering_trace() -> None:
    entries = run_logging({"TF_LOG": "TRACE"})
    assert [e["@level"] for e in entries[:5]] == ["trace", "debug", "info", "warn", "error"]
    assert entries[2]["volume"] == "v1"
    assert all(TIMESTAMP.match(e["@timestamp"]) for e in entries)
    assert "third party info" not in [e["@message"] for e in entries]


def test_process_level_provider_overrides_and_off() -> None:
    assert [e["@level"] for e in run_logging({"TF_LOG": "TRACE", "TF_LOG_PROVIDER": "ERROR"})] == ["error"]
    assert run_logging({"TF_LOG": "OFF"}) == []
