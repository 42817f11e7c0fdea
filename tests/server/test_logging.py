"""SEENEXT_LOG_FORMAT=json: one JSON object per line, with time, level, logger, message and the traceback."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.serving import free_port
from models.settings import Settings, SettingsError
from server.log_format import handler

ROOT = Path(__file__).resolve().parents[2]


def test_a_record_with_a_traceback_is_one_json_line() -> None:
    out = io.StringIO()
    logger = logging.getLogger("seenext.test.json")
    logger.propagate = False
    logger.addHandler(handler("json", out))
    try:
        logger.warning("disk at %d%%\nsecond line", 93)
        try:
            {}["missing"]
        except KeyError:
            logger.exception("lookup failed for %s", "cust-1")
    finally:
        logger.handlers.clear()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the newline of the message and the traceback stay inside their record
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["logger"] == "seenext.test.json"
    assert first["message"] == "disk at 93%\nsecond line" and "exception" not in first
    assert (
        abs(time.mktime(time.strptime(first["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone - time.time())
        < 60
    )
    assert first["time"].endswith("Z") and first["process"] == os.getpid()
    assert second["level"] == "ERROR" and second["message"] == "lookup failed for cust-1"
    assert second["exception"].startswith("Traceback") and "KeyError: 'missing'" in second["exception"]


def test_text_stays_the_default_and_an_unknown_format_stops_the_start() -> None:
    assert (
        Settings().log_format == "text"
        and Settings.from_env({"SEENEXT_LOG_FORMAT": "JSON"}).log_format == "json"
    )
    with pytest.raises(SettingsError, match="SEENEXT_LOG_FORMAT='xml' is not one of text, json"):
        Settings.from_env({"SEENEXT_LOG_FORMAT": "xml"})
    out = io.StringIO()
    logger = logging.getLogger("seenext.test.text")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler("text", out))
    try:
        logger.info("hello")
    finally:
        logger.handlers.clear()
    assert out.getvalue().rstrip().endswith("INFO seenext.test.text: hello")


def test_seenext_serve_logs_json_lines_on_stderr(tmp_path: Path) -> None:
    """The real command: every line it writes on stderr while starting and stopping parses as JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEENEXT_")}
    env.update(SEENEXT_LOG_FORMAT="json", SEENEXT_DATA_DIR=str(tmp_path), SEENEXT_PORT=str(free_port()))
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "serve"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    try:
        deadline = time.monotonic() + 60
        while "seenext is serving" not in server.stdout.readline():  # the banner, printed once serving
            assert server.poll() is None and time.monotonic() < deadline
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    records = [json.loads(line) for line in err.splitlines()]
    assert server.returncode == 0
    messages = [(r["level"], r["logger"], r["message"]) for r in records]
    assert any(level == "INFO" and "seenext serving on" in m for level, _, m in messages), messages
    assert any(logger == "seenext" and m.startswith("stopping") for _, logger, m in messages), messages
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
