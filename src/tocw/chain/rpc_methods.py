"""The dev chain's JSON-RPC 2.0 API, sans-I/O: text in, text out, plus subscription pushes.

`RpcSession.handle(text) -> list[str]` parses one frame (a request or a batch), runs the
methods against the node's `Chain` and returns the frames to send back: the response first, then
any notification a new subscription starts with (Substrate sends the current best header right
after `chain_subscribeNewHeads` answers, and "ready" right after
`author_submitAndWatchExtrinsic`). Later notifications reach the session through the
`SubscriptionHub`, which the chain calls on every imported and finalized block; the hub formats
them and calls the session's `send`. The transports in server.py only move text, so this module
is tested without sockets (the split of python-websockets' protocol and transport).

Framing is tocw.rpc's, the project's one JSON-RPC layer: `parse_incoming` (with its `Limits`)
validates every frame, responses and pushes are its wire types, serialized by `serialize`, and
the JSON-RPC / jsonrpsee error codes come from tocw.rpc.errors. tocw.rpc's `Dispatcher` is not
used: it is stateless, and the node's methods need the session (subscriptions, pushes). What
this module owns is the node's method table and Substrate's own error codes (the table right
below), each error built as a tocw.rpc `RpcError`.

Method names, parameter forms, result shapes and error codes are Substrate's (polkadot-v0.9.42
`sc-rpc` + `sc-rpc-api` on jsonrpsee), so unmodified clients (substrate-interface,
@polkadot/api) work. One difference from jsonrpsee: `"params": null` is refused as JSON-RPC 2.0
says (jsonrpsee reads it as no params); clients send `[]`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from tocw import __version__
from tocw.chain import pool as txpool
from tocw.chain.errors import (
    InvalidTransactionError,
    RuntimeApiError,
    UnknownRuntimeApiError,
)
from tocw.chain.storage import StateDiscardedError, StoredBlock, UnknownBlockError
from tocw.primitives.errors import InvalidSs58Error, PrimitivesError
from tocw.primitives.hashing import blake2_256
from tocw.primitives.header import header_to_json, signed_block_to_json
from tocw.primitives.ss58 import parse_account
from tocw.rpc.errors import (
    METHOD_NOT_FOUND,
    STANDARD_MESSAGES,
    InvalidMessageError,
    RpcError,
    internal_error,
    invalid_params,
    method_not_found,
    oversized_request,
    server_error,
)
from tocw.rpc.messages import (
    ErrorObject,
    ErrorResponse,
    IncomingEntry,
    InvalidEntry,
    Limits,
    Notification,
    RequestId,
    Response,
    SuccessResponse,
    parse_incoming,
    serialize,
)

if TYPE_CHECKING:
    from tocw.chain.node import Chain, ImportedBlock

log = logging.getLogger(__name__)

# ---- Substrate's error codes ----------------------------------------------------------------
# The JSON-RPC 2.0 codes and jsonrpsee's request limits (-32007 oversized request, -32010 batch
# too large) are tocw.rpc.errors'. These are the node's own, numbered as Substrate numbers them.
# jsonrpsee: a connection over its subscription limit (in the server-error range: server_error).
TOO_MANY_SUBSCRIPTIONS: Final = -32006
# Substrate sc-rpc-api author/error.rs (BASE 1000)
AUTHOR_BAD_FORMAT: Final = 1001
AUTHOR_VERIFICATION: Final = 1002
POOL_INVALID_TX: Final = 1010
POOL_UNKNOWN_VALIDITY: Final = 1011
POOL_TEMPORARILY_BANNED: Final = 1012
POOL_ALREADY_IMPORTED: Final = 1013
POOL_TOO_LOW_PRIORITY: Final = 1014
POOL_IMMEDIATELY_DROPPED: Final = 1016
# Substrate sc-rpc-api chain/error.rs (BASE 3000) and state/error.rs (BASE 4000)
CHAIN_OTHER: Final = 3001
STATE_INVALID_BLOCK_RANGE: Final = 4001
STATE_INVALID_COUNT: Final = 4002
STATE_CLIENT_ERROR: Final = 4003

MAX_BATCH_LEN: Final = 1000  # jsonrpsee's default batch limit is unbounded; keep ours sane
MAX_SUBSCRIPTIONS_PER_CONNECTION: Final = 1024  # Substrate's --rpc-max-subscriptions-per-connection
STORAGE_KEYS_PAGED_MAX_COUNT: Final = 1000  # Substrate's state_getKeysPaged limit
QUERY_STORAGE_MAX_BLOCKS: Final = 256  # state_queryStorage range limit (our state window)
# What one frame may be: Substrate's 16 MiB --rpc-max-request-size, our batch limit, and
# tocw.rpc's nesting bound (no Substrate request nests deeper than a few levels).
DEFAULT_LIMITS: Final = Limits(max_batch=MAX_BATCH_LEN)


def state_client_error(detail: str) -> RpcError:
    return RpcError(STATE_CLIENT_ERROR, f"Client error: {detail}")


def error_frame(req_id: RequestId, error: RpcError) -> str:
    """The text of an error response."""
    return serialize(ErrorResponse(req_id, ErrorObject.from_error(error)))


def oversized_request_response(limit: int) -> str:
    """The answer to an HTTP body over the size limit (jsonrpsee's oversized request)."""
    return error_frame(None, oversized_request(limit))


# ---- JSON shapes ------------------------------------------------------------------------------


def hex0x(data: bytes) -> str:
    return "0x" + data.hex()


# ---- parameter parsing ------------------------------------------------------------------------


def _param(params: Sequence[Any], index: int) -> Any:
    return params[index] if index < len(params) else None


def parse_hex(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise invalid_params(f"{name}: expected a 0x-prefixed hex string, got {value!r:.80}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise invalid_params(f"{name}: invalid hex string {value!r:.80}") from None


def opt_hex(params: Sequence[Any], index: int, name: str) -> bytes | None:
    value = _param(params, index)
    return None if value is None else parse_hex(value, name)


def req_hex(params: Sequence[Any], index: int, name: str) -> bytes:
    value = _param(params, index)
    if value is None:
        raise invalid_params(f"missing parameter {name}")
    return parse_hex(value, name)


def opt_hash(params: Sequence[Any], index: int, name: str = "hash") -> bytes | None:
    value = opt_hex(params, index, name)
    if value is not None and len(value) != 32:
        raise invalid_params(f"{name}: expected 32 bytes, got {len(value)}")
    return value


def parse_block_number(value: Any) -> int:
    """A block number as Substrate's NumberOrHex: a JSON number or a hex string."""
    if isinstance(value, bool):
        raise invalid_params(f"block number: unexpected {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value, 16) if value.startswith("0x") else int(value)
        except ValueError:
            raise invalid_params(f"block number: invalid {value!r:.80}") from None
    else:
        raise invalid_params(f"block number: expected a number or hex string, got {value!r:.80}")
    if not 0 <= number <= 0xFFFFFFFF:
        raise invalid_params(f"block number {number} out of range for u32")
    return number


def parse_key_list(value: Any, name: str) -> list[bytes]:
    if not isinstance(value, list):
        raise invalid_params(f"{name}: expected a list of hex keys")
    return [parse_hex(v, name) for v in value]


# ---- sessions and subscriptions ---------------------------------------------------------------


@dataclass(eq=False)
class Subscription:
    id: str
    kind: str  # a key of SUBSCRIPTION_KINDS
    session: RpcSession
    keys: frozenset[bytes] | None = None  # state_subscribeStorage filter (None: all keys)
    tx_hash: bytes | None = None  # author_submitAndWatchExtrinsic

    def notification(self, result: Any) -> str:
        method = SUBSCRIPTION_KINDS[self.kind][0]
        return serialize(Notification(method, {"subscription": self.id, "result": result}))

    def notify(self, result: Any) -> None:
        self.session.send(self.notification(result))


# kind -> (notification method, unsubscribe methods)
SUBSCRIPTION_KINDS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "newHead": (
        "chain_newHead",
        ("chain_unsubscribeNewHeads", "chain_unsubscribeNewHead", "unsubscribe_newHead"),
    ),
    "finalizedHead": (
        "chain_finalizedHead",
        ("chain_unsubscribeFinalizedHeads", "chain_unsubscribeFinalisedHeads"),
    ),
    "allHead": ("chain_allHead", ("chain_unsubscribeAllHeads",)),
    "storage": ("state_storage", ("state_unsubscribeStorage",)),
    "runtimeVersion": (
        "state_runtimeVersion",
        ("state_unsubscribeRuntimeVersion", "chain_unsubscribeRuntimeVersion"),
    ),
    "extrinsic": ("author_extrinsicUpdate", ("author_unwatchExtrinsic",)),
    "justifications": ("grandpa_justifications", ("grandpa_unsubscribeJustifications",)),
}


class SubscriptionHub:
    """Fans chain events out to subscriptions; the chain's listener.

    Extrinsic watchers follow Substrate's TransactionStatus: "ready"/"future" at submission
    (sent by the submitting call), {"inBlock": h} when imported, {"finalized": h} when that
    block is finalized, or a final "invalid"/"dropped"/{"usurped": h}. A final status ends the
    subscription, as in Substrate.
    """

    def __init__(self) -> None:
        self._by_kind: dict[str, dict[str, Subscription]] = {k: {} for k in SUBSCRIPTION_KINDS}
        self._watchers: dict[bytes, list[Subscription]] = {}  # tx hash -> watchers (in pool)
        self._in_block: dict[bytes, list[tuple[Subscription, bytes]]] = {}  # block -> (sub, tx)

    def add(self, sub: Subscription) -> None:
        self._by_kind[sub.kind][sub.id] = sub
        if sub.kind == "extrinsic" and sub.tx_hash is not None:
            self._watchers.setdefault(sub.tx_hash, []).append(sub)

    def remove(self, sub: Subscription) -> None:
        self._by_kind[sub.kind].pop(sub.id, None)
        if sub.tx_hash is not None:
            watchers = self._watchers.get(sub.tx_hash)
            if watchers and sub in watchers:
                watchers.remove(sub)
                if not watchers:
                    del self._watchers[sub.tx_hash]
            for block_hash in list(self._in_block):
                remaining = [(s, h) for s, h in self._in_block[block_hash] if s is not sub]
                if remaining:
                    self._in_block[block_hash] = remaining
                else:
                    del self._in_block[block_hash]

    def count(self, kind: str) -> int:
        return len(self._by_kind[kind])

    # -- chain listener --

    def tx_status(self, changes: Iterable[txpool.StatusChange]) -> None:
        for change in changes:
            for sub in list(self._watchers.get(change.tx_hash, ())):
                sub.notify(change.status)
                if change.is_final:
                    sub.session.end_subscription(sub)

    def block_imported(self, block: ImportedBlock) -> None:
        header = header_to_json(block.block.header)
        for kind in ("newHead", "allHead"):
            for sub in list(self._by_kind[kind].values()):
                sub.notify(header)
        for sub in list(self._by_kind["storage"].values()):
            changes = [
                [hex0x(k), None if v is None else hex0x(v)]
                for k, v in sorted(block.changes.items())
                if sub.keys is None or k in sub.keys
            ]
            if changes:
                sub.notify({"block": hex0x(block.block.hash), "changes": changes})
        block_hash = block.block.hash
        for tx_hash in block.included:
            for sub in self._watchers.pop(tx_hash, []):
                sub.notify({"inBlock": hex0x(block_hash)})
                self._in_block.setdefault(block_hash, []).append((sub, tx_hash))

    def transaction_pooled(self, tx_hash: bytes) -> None:
        pass  # the submitting call itself reports "ready"/"future" to its watcher

    def block_finalized(self, block: StoredBlock) -> None:
        header = header_to_json(block.header)
        for sub in list(self._by_kind["finalizedHead"].values()):
            sub.notify(header)
        if block.justification is not None:
            for sub in list(self._by_kind["justifications"].values()):
                sub.notify(hex0x(block.justification))
        for sub, _tx in self._in_block.pop(block.hash, []):
            sub.notify({"finalized": hex0x(block.hash)})
            sub.session.end_subscription(sub)


@dataclass(eq=False)
class RpcSession:
    """One client connection's view of the API: its subscriptions and its outgoing queue.

    `send` is the transport's way to push a frame (a notification) at any time; `handle`
    returns the direct answers to one incoming frame. HTTP sessions have no `send` and refuse
    subscriptions, as a node does over HTTP.
    """

    api: RpcApi
    send: Callable[[str], None] = field(repr=False)
    subscriptions_allowed: bool = True
    max_subscriptions: int = MAX_SUBSCRIPTIONS_PER_CONNECTION
    limits: Limits = DEFAULT_LIMITS
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    _after: list[tuple[Subscription, Any]] = field(default_factory=list)
    closed: bool = False

    def handle(self, text: str | bytes) -> list[str]:
        """Answer one frame: [] for a lone notification, else the response, then any initial
        notifications of subscriptions it opened."""
        try:
            incoming = parse_incoming(text, self.limits)
        except InvalidMessageError as e:
            return [error_frame(None, e.error)]
        self._after = []
        if isinstance(incoming, list):
            replies = [r for r in (self._answer(entry) for entry in incoming) if r is not None]
            out = ["[" + ",".join(replies) + "]"] if replies else []
        else:
            reply = self._answer(incoming)
            out = [reply] if reply is not None else []
        out.extend(self._flush_after())
        return out

    def _answer(self, entry: IncomingEntry) -> str | None:
        response = self._respond(entry)
        if response is None:
            return None
        try:
            return serialize(response)
        except (TypeError, ValueError) as e:  # a handler returned something JSON cannot carry
            method = "?" if isinstance(entry, InvalidEntry) else entry.method
            log.error("result of %s is not JSON-serializable: %s", method, e)
            return error_frame(response.id, internal_error(f"{method}: unserializable result"))

    def _respond(self, entry: IncomingEntry) -> Response | None:
        """The response to one parsed entry; None for a notification (never answered, not
        even with an error)."""
        if isinstance(entry, InvalidEntry):
            return ErrorResponse(entry.id, entry.error)
        try:
            if isinstance(entry.params, dict):
                raise invalid_params("params must be an array (positional parameters)")
            result = self.api.call(self, entry.method, entry.params)
        except RpcError as e:
            if isinstance(entry, Notification):
                return None
            return ErrorResponse(entry.id, ErrorObject.from_error(e))
        if isinstance(entry, Notification):
            return None
        return SuccessResponse(entry.id, result)

    # -- subscriptions --

    def open_subscription(
        self,
        kind: str,
        *,
        keys: frozenset[bytes] | None = None,
        tx_hash: bytes | None = None,
        initial: Any = None,
    ) -> str:
        """Register a subscription; `initial` (if not None) is its first notification, sent
        right after the response that carries the id."""
        self.require_subscriptions()
        if len(self.subscriptions) >= self.max_subscriptions:
            raise server_error(
                TOO_MANY_SUBSCRIPTIONS,
                "Too many subscriptions on the connection",
                f"Exceeded max limit of {self.max_subscriptions}",
            )
        sub_id = secrets.token_hex(8)
        sub = Subscription(sub_id, kind, self, keys=keys, tx_hash=tx_hash)
        self.subscriptions[sub_id] = sub
        self.api.hub.add(sub)
        if initial is not None:
            self._after.append((sub, initial))
        return sub_id

    def require_subscriptions(self) -> None:
        if not self.subscriptions_allowed:
            raise RpcError(
                METHOD_NOT_FOUND,
                STANDARD_MESSAGES[METHOD_NOT_FOUND],
                "subscriptions need a websocket connection",
            )

    def end_subscription(self, sub: Subscription) -> None:
        self.subscriptions.pop(sub.id, None)
        self.api.hub.remove(sub)

    def unsubscribe(self, kind: str, sub_id: Any) -> bool:
        if not isinstance(sub_id, str | int):
            raise invalid_params("expected a subscription id")
        sub = self.subscriptions.get(str(sub_id))
        if sub is None or sub.kind != kind:
            return False
        self.end_subscription(sub)
        return True

    def close(self) -> None:
        """The connection is gone: drop every subscription so the hub stops pushing."""
        self.closed = True
        for sub in list(self.subscriptions.values()):
            self.end_subscription(sub)

    def _flush_after(self) -> list[str]:
        out = [sub.notification(initial) for sub, initial in self._after]
        self._after = []
        return out


# ---- the API ----------------------------------------------------------------------------------

Handler = Callable[["RpcApi", RpcSession, list[Any]], Any]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What system_* reports about this node."""

    chain_name: str
    node_name: str = "tocw"
    node_version: str = __version__
    chain_type: str = "Development"


class RpcApi:
    """The method table bound to one chain; shared by every session of a node."""

    def __init__(self, chain: Chain, info: NodeInfo, hub: SubscriptionHub) -> None:
        self.chain = chain
        self.info = info
        self.hub = hub
        self.methods: dict[str, Handler] = dict(METHODS)
        for kind, (_method, unsubs) in SUBSCRIPTION_KINDS.items():
            for name in unsubs:
                self.methods[name] = _unsubscriber(kind)

    def session(
        self,
        send: Callable[[str], None] | None = None,
        *,
        max_subscriptions: int = MAX_SUBSCRIPTIONS_PER_CONNECTION,
        limits: Limits = DEFAULT_LIMITS,
    ) -> RpcSession:
        """A websocket session when `send` is given, else an HTTP one (no subscriptions)."""
        if send is None:
            return RpcSession(self, _no_push, subscriptions_allowed=False, limits=limits)
        return RpcSession(self, send, max_subscriptions=max_subscriptions, limits=limits)

    def call(self, session: RpcSession, method: str, params: list[Any]) -> Any:
        handler = self.methods.get(method)
        if handler is None:
            raise method_not_found(method)
        try:
            return handler(self, session, params)
        except RpcError:
            raise
        except UnknownBlockError as e:
            raise state_client_error(f"UnknownBlock: {e}") from None
        except StateDiscardedError as e:
            raise state_client_error(f"Api called for an unknown Block: {e}") from None
        except (UnknownRuntimeApiError, RuntimeApiError) as e:
            raise state_client_error(f"Execution failed: Other: {e}") from None
        except PrimitivesError as e:
            raise invalid_params(str(e)) from None
        except Exception as e:
            # A bug must cost one request, never the connection or the node.
            log.exception("internal error in %s", method)
            # The dev chain says what went wrong (it is a development tool, not a service).
            raise internal_error(f"{type(e).__name__}: {e}") from None

    # -- helpers used by handlers --

    def block_at(self, at: bytes | None) -> StoredBlock:
        """The block a query is pinned to: `at`, or the best block."""
        chain = self.chain
        block = chain.block(chain.best_hash if at is None else at)
        if block is None:
            assert at is not None
            raise UnknownBlockError(f"Header was not found in the database: {hex0x(at)}")
        return block


def _no_push(_text: str) -> None:
    raise RuntimeError("an HTTP session cannot push notifications")


def _unsubscriber(kind: str) -> Handler:
    def unsubscribe(api: RpcApi, session: RpcSession, params: list[Any]) -> bool:
        return session.unsubscribe(kind, _param(params, 0))

    return unsubscribe


# -- rpc / system --


def rpc_methods(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    return {"methods": sorted(api.methods)}


def system_chain(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    return api.info.chain_name


def system_name(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    return api.info.node_name


def system_version(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    return api.info.node_version


def system_chain_type(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    return api.info.chain_type


def system_properties(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    return api.chain.runtime.properties()


def system_health(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    # A single authoring node: no peers, never syncing, and it should not expect peers.
    return {"peers": 0, "isSyncing": False, "shouldHavePeers": False}


def system_peers(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    return []


def system_node_roles(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    return ["Authority"]


def system_sync_state(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    best = api.chain.best_number
    return {"startingBlock": 0, "currentBlock": best, "highestBlock": best}


def system_account_next_index(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    value = _param(params, 0)
    if not isinstance(value, str):
        raise invalid_params("expected an account (SS58 address or 0x-hex AccountId)")
    try:
        account = parse_account(value)
    except InvalidSs58Error as e:
        raise invalid_params(str(e)) from None
    return api.chain.account_next_index(account)


# -- chain --


def chain_get_block_hash(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    value = _param(params, 0)
    if value is None:
        return hex0x(api.chain.best_hash)

    def one(v: Any) -> str | None:
        h = api.chain.block_hash(parse_block_number(v))
        return None if h is None else hex0x(h)

    if isinstance(value, list):
        return [one(v) for v in value]
    return one(value)


def chain_get_head(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    return hex0x(api.chain.best_hash)


def chain_get_finalized_head(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    return hex0x(api.chain.finalized_hash)


def chain_get_header(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    at = opt_hash(params, 0)
    block = api.chain.block(api.chain.best_hash if at is None else at)
    return None if block is None else header_to_json(block.header)


def chain_get_block(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    at = opt_hash(params, 0)
    block = api.chain.block(api.chain.best_hash if at is None else at)
    return None if block is None else signed_block_to_json(block.signed_block())


def chain_subscribe_new_heads(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    best = api.block_at(None)
    return session.open_subscription("newHead", initial=header_to_json(best.header))


def chain_subscribe_all_heads(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    best = api.block_at(None)
    return session.open_subscription("allHead", initial=header_to_json(best.header))


def chain_subscribe_finalized_heads(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    fin = api.block_at(api.chain.finalized_hash)
    return session.open_subscription("finalizedHead", initial=header_to_json(fin.header))


# -- state --


def state_get_runtime_version(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    api.block_at(opt_hash(params, 0))  # unknown hash -> error, as a node
    return api.chain.runtime.runtime_version_json()


def state_get_metadata(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    api.block_at(opt_hash(params, 0))
    return hex0x(api.chain.runtime.metadata())


def state_get_storage(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    key = req_hex(params, 0, "key")
    value = api.chain.state(opt_hash(params, 1)).get(key)
    return None if value is None else hex0x(value)


def state_get_storage_hash(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    key = req_hex(params, 0, "key")
    value = api.chain.state(opt_hash(params, 1)).get(key)
    return None if value is None else hex0x(blake2_256(value))


def state_get_storage_size(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    key = req_hex(params, 0, "key")
    value = api.chain.state(opt_hash(params, 1)).get(key)
    return None if value is None else len(value)


def state_get_keys(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    prefix = req_hex(params, 0, "prefix")
    state = api.chain.state(opt_hash(params, 1))
    return [hex0x(k) for k in state.keys(prefix)]


def state_get_keys_paged(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    prefix = opt_hex(params, 0, "prefix") or b""
    count = _param(params, 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise invalid_params("count: expected a non-negative integer")
    if count > STORAGE_KEYS_PAGED_MAX_COUNT:
        raise RpcError(
            STATE_INVALID_COUNT,
            f"count exceeds maximum value. value: {count}, max: {STORAGE_KEYS_PAGED_MAX_COUNT}",
        )
    start = opt_hex(params, 2, "startKey")
    state = api.chain.state(opt_hash(params, 3))
    return [hex0x(k) for k in state.keys(prefix, start_after=start, limit=count)]


def state_query_storage_at(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    keys = parse_key_list(_param(params, 0), "keys")
    at = opt_hash(params, 1)
    block = api.block_at(at)
    state = api.chain.state(block.hash)
    changes = []
    for k in keys:
        v = state.get(k)
        changes.append([hex0x(k), None if v is None else hex0x(v)])
    return [{"block": hex0x(block.hash), "changes": changes}]


def state_query_storage(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    """Changes of `keys` over [from, to]: the first block lists every key, later ones only the
    keys whose value changed (Substrate's semantics)."""
    keys = parse_key_list(_param(params, 0), "keys")
    from_hash = req_hex(params, 1, "fromBlock")
    to_hash = opt_hash(params, 2, "toBlock")
    chain = api.chain
    start = chain.block(from_hash)
    end = chain.block(chain.best_hash if to_hash is None else to_hash)
    if start is None or end is None or start.number > end.number:
        raise RpcError(
            STATE_INVALID_BLOCK_RANGE,
            f"Cannot resolve a block range ['{hex0x(from_hash)}' ... "
            f"'{hex0x(to_hash or chain.best_hash)}]. the range is empty or a block is unknown",
        )
    if end.number - start.number >= QUERY_STORAGE_MAX_BLOCKS:
        raise RpcError(
            STATE_INVALID_BLOCK_RANGE,
            f"Cannot resolve a block range ['{hex0x(from_hash)}' ... "
            f"'{hex0x(end.hash)}]. at most {QUERY_STORAGE_MAX_BLOCKS} blocks per query",
        )
    out: list[dict[str, Any]] = []
    last: dict[bytes, bytes | None] = {}
    for number in range(start.number, end.number + 1):
        h = chain.block_hash(number)
        assert h is not None
        state = chain.state(h)
        changes = []
        for k in keys:
            v = state.get(k)
            if number == start.number or last.get(k) != v:
                changes.append([hex0x(k), None if v is None else hex0x(v)])
            last[k] = v
        if changes or number == start.number:
            out.append({"block": hex0x(h), "changes": changes})
    return out


def state_get_read_proof(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    keys = parse_key_list(_param(params, 0), "keys")
    block = api.block_at(opt_hash(params, 1))
    proof = api.chain.state(block.hash).read_proof(keys)
    return {"at": hex0x(block.hash), "proof": [hex0x(n) for n in proof]}


def state_call(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    method = _param(params, 0)
    if not isinstance(method, str):
        raise invalid_params("method: expected a runtime API function name")
    data = opt_hex(params, 1, "data") or b""
    return hex0x(api.chain.call(method, data, opt_hash(params, 2)))


def state_subscribe_storage(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    raw = _param(params, 0)
    keys = None if raw is None else frozenset(parse_key_list(raw, "keys"))
    best = api.block_at(None)
    initial = None
    if keys is not None:
        state = api.chain.state(best.hash)
        changes = []
        for k in sorted(keys):
            v = state.get(k)
            changes.append([hex0x(k), None if v is None else hex0x(v)])
        initial = {"block": hex0x(best.hash), "changes": changes}
    return session.open_subscription("storage", keys=keys, initial=initial)


def state_subscribe_runtime_version(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    version = api.chain.runtime.runtime_version_json()
    return session.open_subscription("runtimeVersion", initial=version)


# -- author --


def _pool_error(e: Exception) -> RpcError:
    """Substrate's author error mapping (sc-rpc-api author/error.rs)."""
    if isinstance(e, InvalidTransactionError):
        if e.reason == "BadFormat":
            return RpcError(AUTHOR_BAD_FORMAT, f"Extrinsic has invalid format: {e.detail}")
        if e.is_unknown:
            return RpcError(POOL_UNKNOWN_VALIDITY, "Unknown Transaction Validity", str(e))
        return RpcError(POOL_INVALID_TX, "Invalid Transaction", str(e))
    if isinstance(e, txpool.AlreadyImportedError):
        return RpcError(POOL_ALREADY_IMPORTED, "Transaction Already Imported", hex0x(e.tx_hash))
    if isinstance(e, txpool.TemporarilyBannedError):
        return RpcError(POOL_TEMPORARILY_BANNED, "Transaction is temporarily banned")
    if isinstance(e, txpool.TooLowPriorityError):
        return RpcError(
            POOL_TOO_LOW_PRIORITY,
            f"Priority is too low: ({e.old} vs {e.new})",
            "The transaction has too low priority to replace another transaction already in "
            "the pool.",
        )
    if isinstance(e, txpool.ImmediatelyDroppedError):
        return RpcError(
            POOL_IMMEDIATELY_DROPPED,
            "Immediately Dropped",
            f"The transaction couldn't enter the pool because of the limit: {e}",
        )
    raise TypeError(f"not a pool error: {e!r}")


def _submit(api: RpcApi, params: list[Any]) -> tuple[bytes, txpool.StatusChange]:
    value = _param(params, 0)
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcError(AUTHOR_BAD_FORMAT, "Extrinsic has invalid format: expected 0x-hex")
    try:
        xt = bytes.fromhex(value[2:])
    except ValueError:
        raise RpcError(AUTHOR_BAD_FORMAT, "Extrinsic has invalid format: bad hex") from None
    try:
        return api.chain.submit(xt)
    except (InvalidTransactionError, txpool.PoolError) as e:
        raise _pool_error(e) from None


def author_submit_extrinsic(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    tx_hash, _status = _submit(api, params)
    return hex0x(tx_hash)


def author_submit_and_watch_extrinsic(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    session.require_subscriptions()  # refuse over HTTP before the extrinsic enters the pool
    tx_hash, status = _submit(api, params)
    return session.open_subscription("extrinsic", tx_hash=tx_hash, initial=status.status)


def author_pending_extrinsics(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    return [hex0x(x) for x in api.chain.pool.pending()]


# -- grandpa / payment --


def grandpa_subscribe_justifications(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    return session.open_subscription("justifications")


def payment_query_info(api: RpcApi, session: RpcSession, params: list[Any]) -> Any:
    xt = req_hex(params, 0, "extrinsic")
    return api.chain.query_info(xt, opt_hash(params, 1))


METHODS: Final[dict[str, Handler]] = {
    "rpc_methods": rpc_methods,
    "system_chain": system_chain,
    "system_name": system_name,
    "system_version": system_version,
    "system_chainType": system_chain_type,
    "system_properties": system_properties,
    "system_health": system_health,
    "system_peers": system_peers,
    "system_nodeRoles": system_node_roles,
    "system_syncState": system_sync_state,
    "system_accountNextIndex": system_account_next_index,
    "account_nextIndex": system_account_next_index,
    "chain_getBlockHash": chain_get_block_hash,
    "chain_getHead": chain_get_head,
    "chain_getHeader": chain_get_header,
    "chain_getBlock": chain_get_block,
    "chain_getFinalizedHead": chain_get_finalized_head,
    "chain_getFinalisedHead": chain_get_finalized_head,
    "chain_getRuntimeVersion": state_get_runtime_version,
    "chain_subscribeNewHeads": chain_subscribe_new_heads,
    "chain_subscribeNewHead": chain_subscribe_new_heads,
    "subscribe_newHead": chain_subscribe_new_heads,
    "chain_subscribeAllHeads": chain_subscribe_all_heads,
    "chain_subscribeFinalizedHeads": chain_subscribe_finalized_heads,
    "chain_subscribeFinalisedHeads": chain_subscribe_finalized_heads,
    "chain_subscribeRuntimeVersion": state_subscribe_runtime_version,
    "state_getRuntimeVersion": state_get_runtime_version,
    "state_getMetadata": state_get_metadata,
    "state_getStorage": state_get_storage,
    "state_getStorageAt": state_get_storage,
    "state_getStorageHash": state_get_storage_hash,
    "state_getStorageHashAt": state_get_storage_hash,
    "state_getStorageSize": state_get_storage_size,
    "state_getStorageSizeAt": state_get_storage_size,
    "state_getKeys": state_get_keys,
    "state_getKeysPaged": state_get_keys_paged,
    "state_getKeysPagedAt": state_get_keys_paged,
    "state_queryStorage": state_query_storage,
    "state_queryStorageAt": state_query_storage_at,
    "state_getReadProof": state_get_read_proof,
    "state_call": state_call,
    "state_callAt": state_call,
    "state_subscribeStorage": state_subscribe_storage,
    "state_subscribeRuntimeVersion": state_subscribe_runtime_version,
    "author_submitExtrinsic": author_submit_extrinsic,
    "author_submitAndWatchExtrinsic": author_submit_and_watch_extrinsic,
    "author_pendingExtrinsics": author_pending_extrinsics,
    "grandpa_subscribeJustifications": grandpa_subscribe_justifications,
    "payment_queryInfo": payment_query_info,
}
