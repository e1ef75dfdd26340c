"""tocw.rpc.messages: strict JSON-RPC 2.0 parsing and serialization, no sockets."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocw.rpc import errors
from tocw.rpc.errors import InvalidMessageError
from tocw.rpc.messages import (
    DEFAULT_LIMITS,
    ErrorObject,
    ErrorResponse,
    InvalidEntry,
    Limits,
    Notification,
    Request,
    Response,
    SuccessResponse,
    decode_json,
    parse_incoming,
    parse_outgoing,
    request_text,
    serialize,
)


def _error_code(text: str | bytes, limits: Limits = DEFAULT_LIMITS) -> int:
    with pytest.raises(InvalidMessageError) as info:
        parse_incoming(text, limits)
    return info.value.error.code


def test_parse_incoming_request_positional() -> None:
    """A request with an array of params and an integer id."""
    msg = parse_incoming('{"jsonrpc":"2.0","method":"m","params":[1,"a"],"id":7}')
    assert msg == Request("m", [1, "a"], 7)


def test_parse_incoming_request_named_and_string_id() -> None:
    """Params may be an object; ids may be strings or null."""
    assert parse_incoming('{"jsonrpc":"2.0","method":"m","params":{"a":1},"id":"x"}') == Request(
        "m", {"a": 1}, "x"
    )
    assert parse_incoming('{"jsonrpc":"2.0","method":"m","id":null}') == Request("m", [], None)


def test_parse_incoming_notification_without_id() -> None:
    """A request object without an id member is a notification; missing params mean []."""
    assert parse_incoming('{"jsonrpc":"2.0","method":"n"}') == Notification("n", [])


@pytest.mark.parametrize(
    ("obj", "expected_id"),
    [
        ({"jsonrpc": "1.0", "method": "m", "id": 1}, 1),
        ({"method": "m", "id": 2}, 2),
        ({"jsonrpc": "2.0", "method": 5, "id": 3}, 3),
        ({"jsonrpc": "2.0", "method": "m", "params": "x", "id": 4}, 4),
        ({"jsonrpc": "2.0", "method": "m", "params": 1, "id": 5}, 5),
        ({"jsonrpc": "2.0", "method": "m", "id": 1.5}, None),
        ({"jsonrpc": "2.0", "method": "m", "id": True}, None),
        ({"jsonrpc": "2.0", "method": "m", "id": [1]}, None),
        ({"jsonrpc": "2.0", "method": "m", "id": {}}, None),
    ],
)
def test_parse_incoming_invalid_request_keeps_valid_id(obj: object, expected_id: object) -> None:
    """Each kind of malformed request gives -32600 with its id when the id itself is valid."""
    entry = parse_incoming(json.dumps(obj))
    assert isinstance(entry, InvalidEntry)
    assert entry.error.code == errors.INVALID_REQUEST
    assert entry.id == expected_id


def test_parse_incoming_non_object_is_invalid_request() -> None:
    """A scalar or string message is an invalid request, not a crash."""
    for text in ("1", '"x"', "null", "true"):
        entry = parse_incoming(text)
        assert isinstance(entry, InvalidEntry) and entry.error.code == errors.INVALID_REQUEST


def test_parse_incoming_batch_elements_validated_each() -> None:
    """A bad element of a batch becomes its own InvalidEntry; the others stay requests."""
    batch = parse_incoming(
        '[{"jsonrpc":"2.0","method":"a","id":1}, 5, {"jsonrpc":"2.0","method":"b"}]'
    )
    assert isinstance(batch, list)
    assert batch[0] == Request("a", [], 1)
    assert isinstance(batch[1], InvalidEntry)
    assert batch[2] == Notification("b", [])


def test_parse_incoming_empty_batch_is_invalid_request() -> None:
    """[] is an invalid request as a whole."""
    assert _error_code("[]") == errors.INVALID_REQUEST


def test_parse_incoming_batch_limit() -> None:
    """A batch over the limit is refused as a whole with the too-big-batch code."""
    text = json.dumps([{"jsonrpc": "2.0", "method": "m", "id": i} for i in range(4)])
    assert _error_code(text, Limits(max_batch=3)) == errors.TOO_BIG_BATCH
    assert isinstance(parse_incoming(text, Limits(max_batch=4)), list)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        '{"jsonrpc":"2.0",}',
        "NaN",
        '{"a": Infinity}',
        "[1e999]",
        "1" * 5000,
        "[" * 100_000 + "]" * 100_000,
        b"\xff\xfe{}",
        b'{"jsonrpc":"2.0","method":"\xc3\x28","id":1}',
    ],
)
def test_parse_incoming_garbage_is_parse_error(text: str | bytes) -> None:
    """Not JSON, non-UTF-8 bytes, NaN, overflowing numbers, huge ints, absurd nesting: -32700."""
    assert _error_code(text) == errors.PARSE_ERROR


def test_parse_incoming_depth_limit() -> None:
    """Nesting deeper than max_depth is refused; at the limit it is accepted."""
    deep = '{"jsonrpc":"2.0","method":"m","params":' + "[" * 10 + "]" * 10 + ',"id":1}'
    assert isinstance(parse_incoming(deep, Limits(max_depth=11)), Request)
    assert _error_code(deep, Limits(max_depth=10)) == errors.PARSE_ERROR


def test_parse_incoming_size_limit_counts_utf8_bytes() -> None:
    """The size limit is in UTF-8 bytes, for str and bytes input alike."""
    text = '{"jsonrpc":"2.0","method":"' + "é" * 40 + '","id":1}'
    size = len(text.encode())
    assert isinstance(parse_incoming(text, Limits(max_size=size)), Request)
    assert _error_code(text, Limits(max_size=size - 1)) == errors.OVERSIZED_REQUEST
    assert _error_code(text.encode(), Limits(max_size=size - 1)) == errors.OVERSIZED_REQUEST


def test_parse_outgoing_responses() -> None:
    """Success, error (with and without data) and batch responses parse into their types."""
    assert parse_outgoing('{"jsonrpc":"2.0","result":null,"id":1}') == SuccessResponse(1, None)
    err = parse_outgoing('{"jsonrpc":"2.0","error":{"code":-1,"message":"x","data":[1]},"id":"a"}')
    assert err == ErrorResponse("a", ErrorObject(-1, "x", [1]))
    batch = parse_outgoing(
        '[{"jsonrpc":"2.0","result":1,"id":1},{"jsonrpc":"2.0","result":2,"id":2}]'
    )
    assert batch == [SuccessResponse(1, 1), SuccessResponse(2, 2)]


def test_parse_outgoing_notification() -> None:
    """A server push (no id, a method) is a Notification."""
    text = (
        '{"jsonrpc":"2.0","method":"chain_finalizedHead","params":{"subscription":"s","result":1}}'
    )
    assert parse_outgoing(text) == Notification(
        "chain_finalizedHead", {"subscription": "s", "result": 1}
    )


@pytest.mark.parametrize(
    "text",
    [
        '{"jsonrpc":"2.0","result":1}',
        '{"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"m"},"id":1}',
        '{"jsonrpc":"2.0","id":1}',
        '{"jsonrpc":"2.0","error":{"code":"1","message":"m"},"id":1}',
        '{"jsonrpc":"2.0","error":{"code":1},"id":1}',
        '{"jsonrpc":"2.0","error":[],"id":1}',
        '{"result":1,"id":1}',
        "[]",
        "[1]",
        "not json",
    ],
)
def test_parse_outgoing_malformed_raises_typed(text: str) -> None:
    """Every malformed response raises InvalidMessageError, nothing else."""
    with pytest.raises(InvalidMessageError):
        parse_outgoing(text)


def test_serialize_round_trip() -> None:
    """serialize() output parses back into the same messages."""
    req = Request("m", [1, {"a": "b"}], 3)
    assert parse_incoming(serialize(req)) == req
    assert parse_incoming(serialize(Notification("n", {"x": 1}))) == Notification("n", {"x": 1})
    responses: list[Response] = [
        SuccessResponse(1, [1]),
        ErrorResponse(None, ErrorObject(-32600, "Invalid Request")),
    ]
    assert parse_outgoing(serialize(responses)) == responses
    assert json.loads(request_text("m", [], 9)) == {
        "jsonrpc": "2.0",
        "method": "m",
        "params": [],
        "id": 9,
    }


def test_serialize_omits_null_error_data() -> None:
    """data is omitted when None (JSON-RPC makes it optional)."""
    text = serialize(ErrorResponse(1, ErrorObject(-32601, "Method not found")))
    assert json.loads(text)["error"] == {"code": -32601, "message": "Method not found"}


def test_decode_json_type_error_is_parse_error() -> None:
    """A non-text argument is reported as a parse error, not a TypeError."""
    with pytest.raises(InvalidMessageError):
        decode_json(12345)  # type: ignore[arg-type]


def test_server_error_range_checked() -> None:
    """server_error() only builds codes of the implementation-defined range."""
    assert errors.server_error(-32050, "busy").code == -32050
    with pytest.raises(ValueError):
        errors.server_error(-31999, "no")
    assert errors.is_reserved_code(errors.PARSE_ERROR)
    assert not errors.is_reserved_code(1010)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_parse_incoming_fuzz_never_crashes(data: str | bytes) -> None:
    """Any text or bytes parses or raises InvalidMessageError, nothing else."""
    with contextlib.suppress(InvalidMessageError):
        parse_incoming(data)
    with contextlib.suppress(InvalidMessageError):
        parse_outgoing(data)
