"""JSON-RPC 2.0 messages: parsing with strict validation, and serialization. No I/O.

Owns the wire types (requests, notifications, responses, error objects, batches) and the two
parsers: `parse_incoming` for what a server receives and `parse_outgoing` for what a client
receives. Both take untrusted text and either return typed messages or raise
`InvalidMessageError` carrying the JSON-RPC error object to answer with; no other exception
escapes for any input (bytes that are not UTF-8, NaN, numbers with thousands of digits, nesting
deeper than the recursion limit, ...). Size, batch and depth limits are parameters (`Limits`).

Written by hand on the standard `json` module: the maintained JSON-RPC libraries either bundle a
transport or validate laxly, and what is needed here is small, strict and fast (the client parses
every block of a catch-up through `parse_outgoing`).

Validation follows the specification (https://www.jsonrpc.org/specification):
- "jsonrpc" must be exactly "2.0"; "method" a string; "params", when present, an array or an
  object; "id" a string, an integer or null (fractional and boolean ids are refused). A request
  object without "id" is a notification.
- Each element of a batch is validated on its own, so one bad element gets its own error
  response (`InvalidEntry`) and the others still run; an empty batch is itself invalid.
- A response has "id" and exactly one of "result" and "error"; an error object has an integer
  "code" and a string "message".
Unknown extra members are ignored, as most servers do.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from tocw.rpc.errors import (
    InvalidMessageError,
    RpcError,
    invalid_request,
    oversized_request,
    parse_error,
    too_big_batch,
)

JSONRPC_VERSION: Final = "2.0"
DEFAULT_MAX_SIZE: Final = 16 * 1024 * 1024  # Substrate's default --rpc-max-request-size
DEFAULT_MAX_BATCH: Final = 1000
DEFAULT_MAX_DEPTH: Final = 64

RequestId: TypeAlias = str | int | None
Params: TypeAlias = list[Any] | dict[str, Any]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one incoming message. `max_size` counts UTF-8 bytes; `max_depth` counts
    nested arrays/objects (the message itself is depth 1)."""

    max_size: int = DEFAULT_MAX_SIZE
    max_batch: int = DEFAULT_MAX_BATCH
    max_depth: int = DEFAULT_MAX_DEPTH


DEFAULT_LIMITS: Final = Limits()


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    params: Params
    id: RequestId


@dataclass(frozen=True, slots=True)
class Notification:
    """A request without an id: never answered. Servers also use it for subscription pushes."""

    method: str
    params: Params


@dataclass(frozen=True, slots=True)
class InvalidEntry:
    """A request (or batch element) that failed validation; answered with `error`."""

    id: RequestId
    error: ErrorObject


@dataclass(frozen=True, slots=True)
class ErrorObject:
    code: int
    message: str
    data: Any = None

    @classmethod
    def from_error(cls, e: RpcError) -> ErrorObject:
        return cls(e.code, e.message, e.data)

    def to_error(self) -> RpcError:
        return RpcError(self.code, self.message, self.data)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


@dataclass(frozen=True, slots=True)
class SuccessResponse:
    id: RequestId
    result: Any


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    id: RequestId
    error: ErrorObject


Response: TypeAlias = SuccessResponse | ErrorResponse
IncomingEntry: TypeAlias = Request | Notification | InvalidEntry
Incoming: TypeAlias = IncomingEntry | list[IncomingEntry]
Outgoing: TypeAlias = Response | Notification | list[Response]
Message: TypeAlias = Request | Notification | Response


# --- decoding the text -------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]}... is out of range")
    return value


_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_parse_float)
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _exceeds_depth(value: Any, max_depth: int) -> bool:
    """Iterative, so a hostile nesting cannot exhaust the Python stack here."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, list | dict))
    return False


def decode_json(text: str | bytes, limits: Limits | None = DEFAULT_LIMITS) -> Any:
    """JSON text -> value, or InvalidMessageError (parse error / oversized request)."""
    if isinstance(text, bytes | bytearray | memoryview):
        raw = bytes(text)
        if limits is not None and len(raw) > limits.max_size:
            raise InvalidMessageError(oversized_request(limits.max_size))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidMessageError(parse_error(f"not UTF-8: {e.reason}")) from None
    elif not isinstance(text, str):
        raise InvalidMessageError(parse_error(f"expected text, got {type(text).__name__}"))
    elif limits is not None and len(text) * 4 > limits.max_size:  # else it surely fits
        too_big = len(text) > limits.max_size
        if too_big or len(text.encode("utf-8", "surrogatepass")) > limits.max_size:
            raise InvalidMessageError(oversized_request(limits.max_size))
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise InvalidMessageError(parse_error("nested too deeply")) from None
    except ValueError as e:  # JSONDecodeError, huge ints, NaN/Infinity
        raise InvalidMessageError(parse_error(str(e)[:200])) from None
    if (
        limits is not None
        and isinstance(value, list | dict)
        and _exceeds_depth(value, limits.max_depth)
    ):
        raise InvalidMessageError(parse_error(f"nested deeper than {limits.max_depth} levels"))
    return value


def _is_id(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, str)
        or (isinstance(value, int) and not isinstance(value, bool))
    )


# --- server side: what a client sends ----------------------------------------------------------


def _invalid(req_id: RequestId, detail: str) -> InvalidEntry:
    return InvalidEntry(req_id, ErrorObject.from_error(invalid_request(detail)))


def parse_incoming_entry(obj: Any) -> IncomingEntry:
    """Validate one decoded request object (or batch element)."""
    if not isinstance(obj, dict):
        return _invalid(None, f"expected a request object, got {type(obj).__name__}")
    has_id = "id" in obj
    req_id = obj.get("id")
    if not _is_id(req_id):
        return _invalid(None, "id must be a string, an integer or null")
    if obj.get("jsonrpc") != JSONRPC_VERSION:
        return _invalid(req_id, 'jsonrpc must be exactly "2.0"')
    method = obj.get("method")
    if not isinstance(method, str):
        return _invalid(req_id, "method must be a string")
    params = obj.get("params", [])
    if not isinstance(params, list | dict):
        return _invalid(req_id, "params must be an array or an object")
    if has_id:
        return Request(method, params, req_id)
    return Notification(method, params)


def parse_incoming(text: str | bytes, limits: Limits = DEFAULT_LIMITS) -> Incoming:
    """Parse what a server receives: one request/notification, or a batch of them.

    Raises InvalidMessageError only when the whole message is unusable (not JSON, too big, an
    empty or oversized batch); a bad element is returned as an InvalidEntry.
    """
    value = decode_json(text, limits)
    if isinstance(value, list):
        if not value:
            raise InvalidMessageError(invalid_request("empty batch"))
        if len(value) > limits.max_batch:
            raise InvalidMessageError(too_big_batch(limits.max_batch))
        return [parse_incoming_entry(v) for v in value]
    return parse_incoming_entry(value)


# --- client side: what a server sends ----------------------------------------------------------


def _protocol(detail: str) -> InvalidMessageError:
    return InvalidMessageError(invalid_request(detail))


def _parse_error_object(obj: Any) -> ErrorObject:
    if not isinstance(obj, dict):
        raise _protocol("error must be an object")
    code = obj.get("code")
    message = obj.get("message")
    if not isinstance(code, int) or isinstance(code, bool):
        raise _protocol("error.code must be an integer")
    if not isinstance(message, str):
        raise _protocol("error.message must be a string")
    return ErrorObject(code, message, obj.get("data"))


def parse_response_entry(obj: Any) -> Response:
    """Validate one decoded response object."""
    if not isinstance(obj, dict):
        raise _protocol(f"expected a response object, got {type(obj).__name__}")
    if obj.get("jsonrpc") != JSONRPC_VERSION:
        raise _protocol('jsonrpc must be exactly "2.0"')
    if "id" not in obj:
        raise _protocol("a response must have an id")
    req_id = obj["id"]
    if not _is_id(req_id):
        raise _protocol("id must be a string, an integer or null")
    has_result = "result" in obj
    if has_result == ("error" in obj):
        raise _protocol("a response has exactly one of result and error")
    if has_result:
        return SuccessResponse(req_id, obj["result"])
    return ErrorResponse(req_id, _parse_error_object(obj["error"]))


def parse_outgoing(text: str | bytes, limits: Limits | None = None) -> Outgoing:
    """Parse what a client receives: a response, a batch response, or a notification (a
    subscription push). `limits=None` trusts the peer's size and nesting (a node's answers can
    be large); malformed input still raises InvalidMessageError, never anything else."""
    value = decode_json(text, limits)
    if isinstance(value, list):
        if not value:
            raise _protocol("empty batch response")
        return [parse_response_entry(v) for v in value]
    if isinstance(value, dict) and "method" in value and "id" not in value:
        entry = parse_incoming_entry(value)
        if isinstance(entry, InvalidEntry):
            raise InvalidMessageError(entry.error.to_error())
        assert isinstance(entry, Notification)
        return entry
    return parse_response_entry(value)


# --- serialization -----------------------------------------------------------------------------


def dumps(value: Any) -> str:
    """Compact JSON; ValueError/TypeError for values JSON cannot carry (NaN, bytes, ...)."""
    return _ENCODER.encode(value)


def to_json(message: Message) -> dict[str, Any]:
    if isinstance(message, Request):
        return {
            "jsonrpc": JSONRPC_VERSION,
            "method": message.method,
            "params": message.params,
            "id": message.id,
        }
    if isinstance(message, Notification):
        return {"jsonrpc": JSONRPC_VERSION, "method": message.method, "params": message.params}
    if isinstance(message, SuccessResponse):
        return {"jsonrpc": JSONRPC_VERSION, "result": message.result, "id": message.id}
    return {"jsonrpc": JSONRPC_VERSION, "error": message.error.to_json(), "id": message.id}


def serialize(message: Message | Sequence[Message]) -> str:
    """One message or a batch as JSON text."""
    if isinstance(message, Sequence):
        return dumps([to_json(m) for m in message])
    return dumps(to_json(message))


def request_text(method: str, params: Params, req_id: RequestId) -> str:
    """The client's hot path: a request's text without building a Request first."""
    return dumps({"jsonrpc": JSONRPC_VERSION, "method": method, "params": params, "id": req_id})
