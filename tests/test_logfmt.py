"""``--log-format json`` (issue 13): every line a log shipper reads is one JSON
object with the text line's fields.

By hand: ``python run.py --dsn ... --log-format json 2>&1 | jq .``
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.cli_process import ROOT
from tests.fix_db import insert_appointment
from tests.fix_server import SECRET, auth
from tornado_sse.logfmt import JsonFormatter, formatter
from tornado_sse.testing.processes import clean_env
from tornado_sse.testing.sse_client import Response, open_stream, request

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
            stream = await open_stream(url + "/sse?max_events=1", auth())
            await request(url + "/poll?since_id=abc", headers=auth())  # a 400, logged
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
        assert FIELDS <= set(entry) <= FIELDS | {"exc_info"}, entry
    messages = [e["message"] for e in entries]
    assert any(m.startswith("tornado_sse listening on ") for m in messages)
    assert "stopped" in messages
    assert len(entries) >= 5, messages  # debug level: start-up, the stream, shutdown
    assert not any("eyJ" in line for line in lines), "a token reached the log"
