"""JSON-RPC 2.0 dispatch, sans-I/O: `await dispatcher.dispatch(text) -> text | None`.

Owns the method registry and the mapping from what a handler does to what the caller sees.
Transports (the worker's wss server, tests) only move text in and out; everything JSON-RPC is
decided here, so it is tested without sockets (python-websockets' protocol/transport split,
explodinglabs/jsonrpcserver's pure dispatch).

A handler is a plain function, sync or async, whose parameters are the call's params: a params
array binds positionally, a params object by name. Its declared signature is the contract: a
call whose params do not bind to it (too many, too few, unknown names) is answered with
-32602 Invalid params before the handler runs, so handlers never see a wrong arity. The return
value is the JSON result. Application errors are `RpcError(code, message, data)`, sent as is;
any other exception is a bug: it is logged with its traceback and the caller gets -32603
Internal error with no detail, so internals never leak.

Registries are explicit dicts (`{"author_getShard": get_shard}`) so that STF modules and
deployments can add their own methods: `Dispatcher(core_methods, module_methods)` or
`dispatcher.register(name, handler)`. A name defined twice raises DuplicateMethodError instead
of letting one module silently replace another's method.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from tocw.rpc.errors import (
    DuplicateMethodError,
    InvalidMessageError,
    RpcError,
    internal_error,
    invalid_params,
    method_not_found,
)
from tocw.rpc.messages import (
    DEFAULT_LIMITS,
    ErrorObject,
    ErrorResponse,
    IncomingEntry,
    InvalidEntry,
    Limits,
    Notification,
    Params,
    Request,
    Response,
    SuccessResponse,
    parse_incoming,
    serialize,
)

Handler: TypeAlias = Callable[..., Any]  # returns a JSON value, or an awaitable of one

RESERVED_PREFIX: Final = "rpc."  # JSON-RPC 2.0 reserves these names for extensions

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Method:
    handler: Handler
    signature: inspect.Signature


def merge_methods(*registries: Mapping[str, Handler]) -> dict[str, Handler]:
    """One registry from several; DuplicateMethodError if a name appears twice."""
    merged: dict[str, Handler] = {}
    for registry in registries:
        for name, handler in registry.items():
            if name in merged:
                raise DuplicateMethodError(f"method {name!r} is defined twice")
            merged[name] = handler
    return merged


class Dispatcher:
    """A method registry and the dispatch of JSON-RPC text against it."""

    def __init__(
        self,
        *registries: Mapping[str, Handler],
        limits: Limits = DEFAULT_LIMITS,
        logger: logging.Logger | None = None,
    ) -> None:
        self.limits = limits
        self._log = logger or _log
        self._methods: dict[str, _Method] = {}
        self._handlers: dict[str, Handler] = {}
        for name, handler in merge_methods(*registries).items():
            self.register(name, handler)

    # -- the registry --

    def register(self, name: str, handler: Handler) -> None:
        """Add a method; DuplicateMethodError if `name` is taken, TypeError for a handler whose
        signature cannot be inspected (it could never be called with checked params)."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"method name must be a non-empty string, got {name!r}")
        if name.startswith(RESERVED_PREFIX):
            raise ValueError(f"method names starting with {RESERVED_PREFIX!r} are reserved")
        if name in self._methods:
            raise DuplicateMethodError(f"method {name!r} is already registered")
        if not callable(handler):
            raise TypeError(f"handler of {name!r} is not callable")
        try:
            signature = inspect.signature(handler)
        except (TypeError, ValueError) as e:
            raise TypeError(f"cannot inspect the signature of {name!r}'s handler: {e}") from None
        self._methods[name] = _Method(handler, signature)
        self._handlers[name] = handler

    @property
    def methods(self) -> Mapping[str, Handler]:
        """A read-only view of the registry, e.g. to merge into another Dispatcher."""
        return MappingProxyType(self._handlers)

    def method_names(self) -> list[str]:
        return sorted(self._methods)

    # -- dispatch --

    async def dispatch(self, text: str | bytes) -> str | None:
        """Answer one incoming message; None when nothing is to be sent (notifications)."""
        try:
            incoming = parse_incoming(text, self.limits)
        except InvalidMessageError as e:
            return serialize(ErrorResponse(None, ErrorObject.from_error(e.error)))
        if isinstance(incoming, list):
            answers = await asyncio.gather(*(self._answer(entry) for entry in incoming))
            parts = [a for a in answers if a is not None]
            return "[" + ",".join(parts) + "]" if parts else None
        return await self._answer(incoming)

    async def _answer(self, entry: IncomingEntry) -> str | None:
        response = await self.dispatch_entry(entry)
        if response is None:
            return None
        try:
            return serialize(response)
        except (TypeError, ValueError) as e:
            method = entry.method if isinstance(entry, Request) else "?"
            self._log.error("result of %s is not JSON-serializable: %s", method, e)
            return serialize(ErrorResponse(response.id, ErrorObject.from_error(internal_error())))

    async def dispatch_entry(self, entry: IncomingEntry) -> Response | None:
        """The response to one parsed request; None for notifications."""
        if isinstance(entry, InvalidEntry):
            return ErrorResponse(entry.id, entry.error)
        try:
            result = await self.call(entry.method, entry.params)
        except RpcError as e:
            if isinstance(entry, Notification):
                return None
            return ErrorResponse(entry.id, ErrorObject.from_error(e))
        if isinstance(entry, Notification):
            return None
        return SuccessResponse(entry.id, result)

    async def call(self, method: str, params: Params) -> Any:
        """Run one method; every failure comes out as RpcError (unexpected ones logged)."""
        entry = self._methods.get(method)
        if entry is None:
            raise method_not_found(method)
        try:
            if isinstance(params, dict):
                bound = entry.signature.bind(**params)
            else:
                bound = entry.signature.bind(*params)
        except TypeError as e:
            raise invalid_params(str(e)) from None
        try:
            result = entry.handler(*bound.args, **bound.kwargs)
            if inspect.isawaitable(result):
                result = await result
        except RpcError:
            raise
        except Exception:
            # A bug must cost one request, never the connection, and must not leak internals.
            self._log.exception("internal error in RPC method %s", method)
            raise internal_error() from None
        return result


def rpc_methods(dispatcher: Dispatcher) -> list[str]:
    """The method names a dispatcher serves, sorted (what `rpc_methods` answers)."""
    return dispatcher.method_names()
