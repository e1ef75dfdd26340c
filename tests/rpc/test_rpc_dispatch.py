"""tocw.rpc.dispatch: text in, text out, no sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocw.rpc import errors
from tocw.rpc.dispatch import Dispatcher, Handler, merge_methods, rpc_methods
from tocw.rpc.errors import DuplicateMethodError, InvalidMessageError, RpcError
from tocw.rpc.messages import Limits, parse_outgoing


def add(a: int, b: int) -> int:
    return a + b


async def slow_echo(value: Any, delay: float = 0.0) -> Any:
    await asyncio.sleep(delay)
    return value


def fail_app() -> None:
    raise RpcError(1010, "Invalid Transaction", {"reason": "stale"})


def crash() -> None:
    raise KeyError("secret internal detail")


def unserializable() -> Any:
    return b"bytes are not JSON"


CORE: dict[str, Handler] = {
    "add": add,
    "echo": slow_echo,
    "fail": fail_app,
    "crash": crash,
    "bad": unserializable,
}


def run(dispatcher: Dispatcher, text: str | bytes) -> Any:
    out = asyncio.run(dispatcher.dispatch(text))
    return None if out is None else json.loads(out)


def test_dispatch_positional_and_named_params() -> None:
    """Array params bind positionally, object params by name."""
    d = Dispatcher(CORE)
    assert run(d, '{"jsonrpc":"2.0","method":"add","params":[2,3],"id":1}') == {
        "jsonrpc": "2.0",
        "result": 5,
        "id": 1,
    }
    assert run(d, '{"jsonrpc":"2.0","method":"add","params":{"a":1,"b":2},"id":"x"}')["result"] == 3


def test_dispatch_async_handler() -> None:
    """Async handlers are awaited."""
    d = Dispatcher(CORE)
    assert run(d, '{"jsonrpc":"2.0","method":"echo","params":[[1,2]],"id":1}')["result"] == [1, 2]


def test_dispatch_unknown_method_is_32601() -> None:
    """An unregistered name answers Method not found with the request id."""
    out = run(Dispatcher(CORE), '{"jsonrpc":"2.0","method":"nope","id":4}')
    assert out["error"]["code"] == errors.METHOD_NOT_FOUND and out["id"] == 4


@pytest.mark.parametrize(
    "params", ["[1]", "[1,2,3]", '{"a":1}', '{"a":1,"b":2,"c":3}', '{"x":1,"y":2}']
)
def test_dispatch_arity_mismatch_is_32602(params: str) -> None:
    """Params that do not bind to the handler's signature answer Invalid params."""
    out = run(Dispatcher(CORE), f'{{"jsonrpc":"2.0","method":"add","params":{params},"id":1}}')
    assert out["error"]["code"] == errors.INVALID_PARAMS


def test_dispatch_application_error_sent_verbatim() -> None:
    """An RpcError from a handler reaches the caller with its code, message and data."""
    out = run(Dispatcher(CORE), '{"jsonrpc":"2.0","method":"fail","id":1}')
    assert out["error"] == {
        "code": 1010,
        "message": "Invalid Transaction",
        "data": {"reason": "stale"},
    }


def test_dispatch_unexpected_exception_is_32603_without_leak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug answers Internal error with no detail, and is logged with its traceback."""
    with caplog.at_level(logging.ERROR, logger="tocw.rpc.dispatch"):
        out = run(Dispatcher(CORE), '{"jsonrpc":"2.0","method":"crash","id":1}')
    assert out["error"] == {"code": errors.INTERNAL_ERROR, "message": "Internal error"}
    assert "secret" not in json.dumps(out)
    assert any("crash" in r.getMessage() and r.exc_info for r in caplog.records)


def test_dispatch_unserializable_result_is_32603() -> None:
    """A result JSON cannot carry answers Internal error instead of breaking the transport."""
    out = run(Dispatcher(CORE), '{"jsonrpc":"2.0","method":"bad","id":1}')
    assert out["error"]["code"] == errors.INTERNAL_ERROR and out["id"] == 1


def test_dispatch_notification_gets_no_answer() -> None:
    """Notifications are executed but never answered, even when they fail."""
    calls: list[int] = []

    def record(x: int) -> None:
        calls.append(x)

    d = Dispatcher({"record": record, **CORE})
    assert asyncio.run(d.dispatch('{"jsonrpc":"2.0","method":"record","params":[7]}')) is None
    assert asyncio.run(d.dispatch('{"jsonrpc":"2.0","method":"nope"}')) is None
    assert asyncio.run(d.dispatch('{"jsonrpc":"2.0","method":"crash"}')) is None
    assert calls == [7]


def test_dispatch_batch_mixed() -> None:
    """A batch answers each request in order, skips notifications, reports bad elements."""
    text = json.dumps(
        [
            {"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": 1},
            {"jsonrpc": "2.0", "method": "add", "params": [1, 1]},
            {"jsonrpc": "2.0", "method": "nope", "id": 2},
            7,
            {"jsonrpc": "2.0", "method": "echo", "params": ["x", 0.01], "id": 3},
        ]
    )
    out = run(Dispatcher(CORE), text)
    assert [r.get("id") for r in out] == [1, 2, None, 3]
    assert out[0]["result"] == 2
    assert out[1]["error"]["code"] == errors.METHOD_NOT_FOUND
    assert out[2]["error"]["code"] == errors.INVALID_REQUEST
    assert out[3]["result"] == "x"


def test_dispatch_batch_of_notifications_is_none() -> None:
    """A batch of notifications only gets no answer at all."""
    text = '[{"jsonrpc":"2.0","method":"add","params":[1,1]},{"jsonrpc":"2.0","method":"x"}]'
    assert asyncio.run(Dispatcher(CORE).dispatch(text)) is None


def test_dispatch_batch_limit() -> None:
    """A batch over the dispatcher's limit is refused with one error."""
    d = Dispatcher(CORE, limits=Limits(max_batch=2))
    text = json.dumps(
        [{"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": i} for i in range(3)]
    )
    out = run(d, text)
    assert out["error"]["code"] == errors.TOO_BIG_BATCH and out["id"] is None


def test_dispatch_parse_error_and_invalid_request() -> None:
    """Garbage answers -32700, a malformed object -32600, both with id null."""
    d = Dispatcher(CORE)
    assert run(d, "{oops")["error"]["code"] == errors.PARSE_ERROR
    assert run(d, b"\xff")["error"]["code"] == errors.PARSE_ERROR
    out = run(d, '{"jsonrpc":"2.0","method":1,"id":null}')
    assert out["error"]["code"] == errors.INVALID_REQUEST and out["id"] is None


def test_dispatcher_register_and_merge() -> None:
    """register() adds methods, duplicates raise, registries merge, rpc_methods lists names."""
    d = Dispatcher({"add": add})
    d.register("echo", slow_echo)
    with pytest.raises(DuplicateMethodError):
        d.register("add", add)
    with pytest.raises(DuplicateMethodError):
        Dispatcher({"add": add}, {"add": slow_echo})
    with pytest.raises(DuplicateMethodError):
        merge_methods({"a": add}, {"b": add}, {"a": add})
    assert rpc_methods(d) == ["add", "echo"]
    merged = Dispatcher(d.methods, {"fail": fail_app})
    assert rpc_methods(merged) == ["add", "echo", "fail"]
    with pytest.raises(TypeError):
        d.methods["x"] = add  # type: ignore[index]


def test_dispatcher_register_refuses_reserved_and_non_callable() -> None:
    """rpc.* names are reserved by JSON-RPC; handlers must be callables."""
    d = Dispatcher()
    with pytest.raises(ValueError):
        d.register("rpc.discover", add)
    with pytest.raises(TypeError):
        d.register("x", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        d.register("", add)


def test_dispatch_varargs_handler_takes_anything() -> None:
    """A handler declaring *params accepts any number of positional params."""

    def count(*params: Any) -> int:
        return len(params)

    d = Dispatcher({"count": count})
    assert run(d, '{"jsonrpc":"2.0","method":"count","params":[1,2,3,4],"id":1}')["result"] == 4


_FUZZ_DISPATCHER = Dispatcher(CORE, limits=Limits(max_batch=8, max_depth=16))


def _check_response(obj: Any) -> None:
    assert isinstance(obj, dict) and obj["jsonrpc"] == "2.0" and "id" in obj
    assert ("result" in obj) != ("error" in obj)
    if "error" in obj:
        assert isinstance(obj["error"]["code"], int) and isinstance(obj["error"]["message"], str)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_request_like = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
        "method": st.sampled_from(["add", "echo", "fail", "crash", "bad", "nope"]) | _json_values,
        "params": _json_values,
        "id": _json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.binary(max_size=100),
        _request_like.map(json.dumps),
        st.lists(_request_like, max_size=10).map(json.dumps),
    )
)
def test_dispatch_fuzz_always_valid_response_or_none(text: str | bytes) -> None:
    """Whatever arrives, the answer is None or valid JSON-RPC 2.0 response text."""
    out = asyncio.run(_FUZZ_DISPATCHER.dispatch(text))
    if out is None:
        return
    try:
        parse_outgoing(out)
    except InvalidMessageError as e:  # pragma: no cover - the assertion reports it
        raise AssertionError(f"invalid response {out!r}: {e}") from None
    value = json.loads(out)
    for obj in value if isinstance(value, list) else [value]:
        _check_response(obj)
