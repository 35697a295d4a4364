"""SSE framing on exact bytes (tornado_sse/sse.py), parsed back by a
WHATWG-conformant parser to prove no value can forge a field."""

from __future__ import annotations

import pytest

from tornado_sse import sse
from tornado_sse.events import Event
from tornado_sse.testing.sse_client import SSEParser

pytestmark = pytest.mark.pg_independent  # SSE framing, no database


@pytest.mark.parametrize("kwargs, expected", [
    ({"data": "x"}, b"data: x\n\n"),
    ({"data": "x", "event": "e", "id": 7}, b"id: 7\nevent: e\ndata: x\n\n"),
    ({"data": "a\nb"}, b"data: a\ndata: b\n\n"),
    ({"data": "a\r\nb\rc"}, b"data: a\ndata: b\ndata: c\n\n"),
    ({"data": ""}, b"data: \n\n"),
    ({"data": "x", "id": "1\n2\r3\x004"}, b"id: 1234\ndata: x\n\n"),
    ({"data": "x", "event": "a\r\nb"}, b"event: ab\ndata: x\n\n"),
    ({"data": "nul\x00here"}, b"data: nulhere\n\n"),
    ({"data": "caf\u00e9 \u2603"}, "data: caf\u00e9 \u2603\n\n".encode("utf-8")),
])
def test_frame_exact_bytes(kwargs, expected):
    assert sse.frame(**kwargs) == expected


def test_text_column_cannot_forge_a_field():
    """A payload holding ``\\nid: 999\\r\\nevent: x`` stays data."""
    evil = 'note\nid: 999\r\nevent: x\n\ndata: injected'
    raw = sse.frame(evil, event="appointment.updated", id=5)
    assert raw == (b"id: 5\nevent: appointment.updated\ndata: note\ndata: id: 999\n"
                   b"data: event: x\ndata: \ndata: data: injected\n\n")
    parser = SSEParser()
    messages = parser.feed(raw)
    assert len(messages) == 1
    assert messages[0].event == "appointment.updated"
    assert messages[0].id == "5"
    assert messages[0].data == "note\nid: 999\nevent: x\n\ndata: injected"


def test_event_envelope_from_row_keeps_utf8_and_json_escapes():
    payload = '{"title": "Zo\u00eb \\n \u2603", "id": 1}'
    event = Event.from_row((42, "availability.created", "availability", 1, payload, 1733044800,
                            None, None, 1733044800.5, '{"db_user": "postgres"}'))
    assert event.frame.startswith(b"id: 42\nevent: availability.created\ndata: {")
    assert event.frame.count(b"\n") == 4  # id, event, data, blank: JSON has no raw newline
    message = SSEParser().feed(event.frame)[0]
    body = message.json()
    assert body == {"id": 42, "topic": "availability.created", "resource": "availability",
                    "resource_id": 1, "payload": {"title": "Zo\u00eb \n \u2603", "id": 1},
                    "ts": 1733044800, "actor": {"db_user": "postgres"}}
    assert event.chunk == b"%x\r\n" % len(event.frame) + event.frame + b"\r\n"


def test_retry_comment_and_chunk():
    assert sse.retry(3000) == b"retry: 3000\n\n"
    for bad in (-1, 1.5, "10", True):
        with pytest.raises(ValueError):
            sse.retry(bad)  # type: ignore[arg-type]
    assert sse.KEEPALIVE == b": keepalive\n\n"
    assert sse.comment("a\nb") == b": ab\n\n"
    assert sse.http_chunk(b"hello") == b"5\r\nhello\r\n"
    assert sse.http_chunk(b"") == b""  # an empty chunk would end the body


def test_heartbeat_exact_bytes_is_an_event_without_id():
    raw = sse.heartbeat(42)
    assert raw == b'event: heartbeat\ndata: {"last_id": 42}\n\n'
    parser = SSEParser(last_event_id="7", _id_buffer="7")
    [message] = parser.feed(raw)
    assert (message.event, message.json(), message.id) == ("heartbeat", {"last_id": 42}, "7")


def test_parser_handles_split_crlf_and_multibyte_across_chunks():
    """The test parser itself must be right, or the stream tests prove nothing."""
    raw = "id: 1\r\ndata: \u00e9t\u00e9\r\n\r\n".encode("utf-8")
    parser = SSEParser()
    messages = []
    for i in range(len(raw)):
        messages += parser.feed(raw[i:i + 1])
    assert [(m.id, m.data) for m in messages] == [("1", "\u00e9t\u00e9")]
