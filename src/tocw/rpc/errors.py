"""Errors of tocw.rpc, and the one table of JSON-RPC error codes.

Every JSON-RPC error code that tocw's own RPC layer produces or interprets is defined here, so
the dispatcher, the client and the worker's handlers agree on them (explodinglabs/jsonrpcserver
keeps them in one place for the same reason). Application handlers pick their codes outside the
reserved range -32768..-32000, or inside the server-defined sub-range -32099..-32000 with
`server_error`.

JsonRpcError                      root of every error raised by tocw.rpc
├── RpcError                      an error object (code, message, data) a handler raises;
│                                 the dispatcher sends it to the caller as is
├── InvalidMessageError           a text that is not a valid JSON-RPC 2.0 message; carries the
│                                 error object to answer it with (parse error, invalid request)
├── DuplicateMethodError          two registries define the same method name (also ValueError)
├── InvalidCertificateError       a certificate to pin is not DER or PEM (also ValueError)
└── RpcClientError                raised by RpcClient
    ├── RpcCallError              the server answered a call with an error object
    ├── RpcConnectionError        cannot connect, or the connection was lost or closed; every
    │                             call in flight and every subscription ends with it
    ├── RpcTimeoutError           no answer within the timeout (also a TimeoutError)
    ├── RpcProtocolError          the server sent something that is not JSON-RPC 2.0
    └── SubscriptionOverflowError a subscriber did not keep up; its bounded buffer overflowed
"""

from __future__ import annotations

from typing import Any, Final

# --- the codes (JSON-RPC 2.0 section 5.1) ------------------------------------------------------

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603

# "-32000 to -32099: Server error. Reserved for implementation-defined server-errors."
SERVER_ERROR_MAX: Final = -32000
SERVER_ERROR_MIN: Final = -32099
# The whole range JSON-RPC reserves for itself; application codes must lie outside it.
RESERVED_MIN: Final = -32768
RESERVED_MAX: Final = -32000

# Server-defined codes, as jsonrpsee (and so Substrate nodes) uses them; a client sees the
# same code for the same limit whether it talks to a node or to a worker.
OVERSIZED_REQUEST: Final = -32007
TOO_BIG_BATCH: Final = -32010

STANDARD_MESSAGES: Final[dict[int, str]] = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    OVERSIZED_REQUEST: "Request is too big",
    TOO_BIG_BATCH: "The batch request was too large",
}


def is_server_error_code(code: int) -> bool:
    """True for the implementation-defined range -32099..-32000."""
    return SERVER_ERROR_MIN <= code <= SERVER_ERROR_MAX


def is_reserved_code(code: int) -> bool:
    """True for codes JSON-RPC reserves (-32768..-32000); applications must not invent these
    except through `server_error`."""
    return RESERVED_MIN <= code <= RESERVED_MAX


# --- the exceptions ----------------------------------------------------------------------------


class JsonRpcError(Exception):
    """Root of every error raised by tocw.rpc."""


class RpcError(JsonRpcError):
    """A JSON-RPC error object. Handlers raise it; the dispatcher answers with it verbatim.

    `data` must be JSON-serializable (or None, which omits it); it is sent to the caller, so
    never put internals in it.
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        if not isinstance(code, int) or isinstance(code, bool):
            raise TypeError(f"JSON-RPC error code must be an int, got {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data

    def __repr__(self) -> str:
        return f"RpcError({self.code}, {self.message!r}, {self.data!r})"


class InvalidMessageError(JsonRpcError):
    """A text that is not a valid JSON-RPC 2.0 message.

    Carries the error object a server answers with, so a transport that parses messages itself
    can still reply correctly.
    """

    def __init__(self, error: RpcError) -> None:
        detail = f" ({error.data})" if error.data is not None else ""
        super().__init__(f"{error.message}{detail}")
        self.error = error


class DuplicateMethodError(JsonRpcError, ValueError):
    """Two method registries define the same name; merging them silently would let a module
    replace another's method."""


class InvalidCertificateError(JsonRpcError, ValueError):
    """A certificate given for pinning cannot be parsed."""


class RpcClientError(JsonRpcError):
    """Root of RpcClient's errors."""


class RpcCallError(RpcClientError):
    """The server answered a call with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        detail = f" ({data})" if data is not None else ""
        super().__init__(f"{code}: {message}{detail}")
        self.code = code
        self.message = message
        self.data = data


class RpcConnectionError(RpcClientError):
    """Cannot connect, or the connection was lost or closed."""


class RpcTimeoutError(RpcClientError, TimeoutError):
    """No answer within the timeout. The connection may still be usable."""


class RpcProtocolError(RpcClientError):
    """The server sent something that is not a JSON-RPC 2.0 response or notification."""


class SubscriptionOverflowError(RpcClientError):
    """The subscriber did not consume notifications fast enough and its buffer overflowed;
    the subscription was closed rather than silently dropping notifications."""


# --- error objects with the standard codes -----------------------------------------------------


def parse_error(data: Any = None) -> RpcError:
    return RpcError(PARSE_ERROR, STANDARD_MESSAGES[PARSE_ERROR], data)


def invalid_request(data: Any = None) -> RpcError:
    return RpcError(INVALID_REQUEST, STANDARD_MESSAGES[INVALID_REQUEST], data)


def method_not_found(method: str) -> RpcError:
    return RpcError(METHOD_NOT_FOUND, STANDARD_MESSAGES[METHOD_NOT_FOUND], method)


def invalid_params(data: Any = None) -> RpcError:
    return RpcError(INVALID_PARAMS, STANDARD_MESSAGES[INVALID_PARAMS], data)


def internal_error(data: Any = None) -> RpcError:
    return RpcError(INTERNAL_ERROR, STANDARD_MESSAGES[INTERNAL_ERROR], data)


def oversized_request(limit: int) -> RpcError:
    return RpcError(
        OVERSIZED_REQUEST, STANDARD_MESSAGES[OVERSIZED_REQUEST], f"limit is {limit} bytes"
    )


def too_big_batch(limit: int) -> RpcError:
    return RpcError(TOO_BIG_BATCH, STANDARD_MESSAGES[TOO_BIG_BATCH], f"limit is {limit}")


def server_error(code: int, message: str, data: Any = None) -> RpcError:
    """An implementation-defined server error; `code` must lie in -32099..-32000."""
    if not is_server_error_code(code):
        raise ValueError(
            f"server error codes lie in {SERVER_ERROR_MIN}..{SERVER_ERROR_MAX}, got {code}"
        )
    return RpcError(code, message, data)
