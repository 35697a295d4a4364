"""``--log-format json`` (issue 13): every line a log shipper reads is one JSON
object with the text line's fields.

By hand: ``python run.py --dsn ... --log-format json 2>&1 | jq .``
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jwt
import pytest

from tests.cli_process import ROOT
from tests.fix_db import insert_appointment
from tests.fix_server import SECRET, auth
from tornado_sse.logfmt import JsonFormatter, fields, formatter
from tornado_sse.testing.processes import clean_env
from tornado_sse.testing.sse_client import Response, open_stream, request

pytestmark = pytest.mark.pg_independent  # log lines, not PostgreSQL's version

FIELDS = {"time", "level", "logger", "message"}


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("tornado_sse.test", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_json_line_has_the_text_lines_fields() -> None:
    rec = record("stream ended: %s", "client_closed\nsecond line")
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    entry = json.loads(line)
    assert set(entry) == FIELDS
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "tornado_sse.test"
    assert entry["message"] == "stream ended: client_closed\nsecond line"
    # The text formatter prints the same time for the same record.
    assert formatter("text").format(rec).startswith(entry["time"] + " WARNING tornado_sse.test: ")


def test_fields_are_json_keys_and_text_k_v() -> None:
    rec = record("stream end")
    rec.__dict__.update(fields(route="sse", events=3, duration_ms=12.5, reason=None, message="not me"))
    entry = json.loads(JsonFormatter().format(rec))
    assert entry["route"] == "sse" and entry["events"] == 3 and entry["duration_ms"] == 12.5
    assert "reason" not in entry  # None fields are left out
    assert entry["message"] == "stream end"  # a field never overwrites the record's own keys
    assert formatter("text").format(rec).endswith("stream end route=sse events=3 duration_ms=12.5 message=not me")


def test_traceback_is_one_string_field() -> None:
    entry = json.loads(JsonFormatter().format(record("failed", exc=True)))
    assert set(entry) == FIELDS | {"exc_info"}
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert entry["exc_info"].endswith("ValueError: boom\nsecond line")


def test_server_with_log_format_json_writes_only_json_lines(db: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--dsn", db, "--port", "0", "--jwt-secret", SECRET,
         "--data-dir", str(tmp_path), "--log-format", "json", "--log-level", "debug"],
        cwd=tmp_path, env=clean_env(), stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr
    assert stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(stderr.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None:
            assert time.monotonic() < deadline and proc.poll() is None, lines
            for line in list(lines):
                message = json.loads(line)["message"]
                if message.startswith("tornado_sse listening on "):
                    url = message.split()[-1]
            time.sleep(0.05)

        async def traffic() -> None:
            for _ in range(300):  # until the listener is up
                resp = await request(url + "/healthz")
                if isinstance(resp, Response) and resp.status == 200:
                    break
                await asyncio.sleep(0.1)
            stream = await open_stream(url + "/sse?max_events=1", {**auth(), "X-Request-Id": "trace-sse-1"})
            assert stream.response.headers["x-request-id"] == "trace-sse-1"
            # A 400, logged with its reason.
            await request(url + "/poll?since_id=abc", headers={**auth(), "X-Request-Id": "trace-poll-1"})
            await asyncio.sleep(0.2)
            insert_appointment(db)
            assert await stream.wait_end(10) == "finished"

        asyncio.run(traffic())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    stderr.close()
    entries = [json.loads(line) for line in lines]  # every line, or this raises
    for entry in entries:
        assert set(entry) >= FIELDS, entry
    # The access line of the stream: its facts are typed fields, not text.
    (sse,) = [e for e in entries if e["logger"] == "tornado.access" and e.get("request_id") == "trace-sse-1"]
    assert sse["route"] == "/sse" and sse["status"] == 200 and sse["method"] == "GET"
    assert sse["events"] == 1 and sse["reason"] == "max_events"
    assert isinstance(sse["bytes"], int) and sse["bytes"] > 0
    assert isinstance(sse["duration_ms"], float) and sse["duration_ms"] >= 200
    (end,) = [e for e in entries if e["message"] == "stream end"]
    assert end["route"] == "sse" and end["events"] == 1 and end["request_id"] == "trace-sse-1"
    (poll,) = [e for e in entries if e.get("request_id") == "trace-poll-1"]
    assert poll["status"] == 400 and poll["reason"] == "rest_invalid_param" and poll["level"] == "WARNING"
    assert poll["route"] == "/poll" and poll["target"] == "/poll?since_id=abc"
    assert poll["message"] == "400 GET /poll?since_id=abc"  # the text people grep stays
    messages = [e["message"] for e in entries]
    assert any(m.startswith("tornado_sse listening on ") for m in messages)
    assert "stopped" in messages
    assert len(entries) >= 5, messages  # debug level: start-up, the stream, shutdown
    assert not any("eyJ" in line for line in lines), "a token reached the log"


# -- request ids ------------------------------------------------------------------

@pytest.mark.parametrize("sent, kept", [
    ("abc-123_DEF.4:5", True),
    ("a" * 128, True),
    ("a" * 129, False),  # bounded
    ("two words", False),  # a space would let a client forge log text
    ("a\"b{c}", False),  # quotes and braces: not in the id alphabet
    ("", False),
])
@pytest.mark.gen_test(timeout=10)
async def test_request_id_is_kept_when_valid_else_generated_and_echoed(server, caplog, sent, kept):
    caplog.set_level(logging.INFO, logger="tornado.access")
    resp = await request(server.url + "/nowhere", headers={"X-Request-Id": sent})
    assert isinstance(resp, Response) and resp.status == 404  # errors carry it too
    echoed = resp.headers["x-request-id"]
    if kept:
        assert echoed == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", echoed), echoed
    (line,) = [r for r in caplog.records if r.name == "tornado.access"]
    entry = json.loads(JsonFormatter().format(line))
    assert entry["request_id"] == echoed and entry["status"] == 404 and entry["reason"] == "rest_no_route"
    assert "route" not in entry  # no route matched


@pytest.mark.gen_test(timeout=10)
async def test_a_401_logs_why_without_the_token(server, caplog):
    caplog.set_level(logging.INFO, logger="tornado.access")
    token = jwt.encode({"role": "admin", "exp": int(time.time()) - 600}, SECRET, algorithm="HS256")
    resp = await request(server.url + "/api/appointments?token=" + token)
    assert isinstance(resp, Response) and resp.status == 401
    (line,) = [r for r in caplog.records if r.name == "tornado.access"]
    entry = json.loads(JsonFormatter().format(line))
    assert entry["route"] == "/api/appointments" and "expired" in entry["reason"]
    assert token not in JsonFormatter().format(line) and entry["target"] == "/api/appointments?token=***"
