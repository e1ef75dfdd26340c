"""Errors of tocw.parentchain, and the mapping from a node's JSON-RPC errors onto them.

Callers (the worker's follower and submitter, the CLI) catch these and never see tocw.rpc's
errors: what to do next depends on what went wrong with the parentchain, not on the transport.
A ParentchainConnectionError means "reconnect and retry" (ReconnectingClient does it); the
others are answers to act on.

ParentchainError                    root of every error raised by tocw.parentchain
├── ParentchainConnectionError      cannot reach the node, or the connection was lost
│   ├── ParentchainTimeoutError     the node did not answer in time
│   └── SubscriptionLaggedError     a subscriber fell behind and its subscription was dropped;
│                                   resubscribing (and catching up) is the remedy
├── NodeRpcError                    the node answered a call with an error object (code, message)
│   ├── ExtrinsicRejectedError      the transaction pool refused an extrinsic (author errors)
│   └── StateUnavailableError       the node no longer has the state of that block (pruned)
├── UnknownBlockError               the node does not know the block (hash or number)
├── InvalidNodeResponseError        an answer without the standard Substrate shape, or
│                                   inconsistent (a block whose hash or parent does not match)
└── ExtrinsicWatchError             a watched extrinsic ended as invalid, dropped or usurped
"""

from __future__ import annotations

from typing import Any, Final

# Substrate sc-rpc-api author/error.rs: BASE_ERROR 1000, Pool errors 1010..1019.
AUTHOR_ERROR_CODES: Final = range(1001, 1020)
# sc-rpc-api state/error.rs: Client error (BASE_ERROR 4000 + 3) carries the backend's message.
STATE_CLIENT_ERROR: Final = 4003
CHAIN_CLIENT_ERROR: Final = 3001


class ParentchainError(Exception):
    """Root of every error raised by tocw.parentchain."""


class ParentchainConnectionError(ParentchainError):
    """The node cannot be reached or the connection was lost; reconnecting may help."""


class ParentchainTimeoutError(ParentchainConnectionError, TimeoutError):
    """The node did not answer in time."""


class SubscriptionLaggedError(ParentchainConnectionError):
    """The consumer did not keep up with a subscription, whose bounded buffer overflowed."""


class NodeRpcError(ParentchainError):
    """The node answered a call with a JSON-RPC error object."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        detail = f" ({data})" if data is not None else ""
        super().__init__(f"{method}: {code} {message}{detail}")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class ExtrinsicRejectedError(NodeRpcError):
    """The node's transaction pool refused the extrinsic (bad format, invalid, stale nonce,
    already imported, temporarily banned, priority too low, ...); `code` says which."""


class StateUnavailableError(NodeRpcError):
    """The node discarded the state of that block (a pruning node keeps only recent state)."""


class UnknownBlockError(ParentchainError):
    """The node does not know a block of that hash or number (yet)."""


class InvalidNodeResponseError(ParentchainError):
    """The node's answer does not have the standard shape, or contradicts itself."""


class ExtrinsicWatchError(ParentchainError):
    """A watched extrinsic reached a final status other than finalized."""

    def __init__(self, status: str, detail: Any = None) -> None:
        super().__init__(f"extrinsic {status}" + (f": {detail}" if detail is not None else ""))
        self.status = status
        self.detail = detail


def node_error(method: str, code: int, message: str, data: Any = None) -> ParentchainError:
    """The typed error for a node's error answer to `method`.

    Matching on message text is unavoidable for pruned state and unknown blocks: Substrate
    reports both as a generic client error (4003/3001) whose message is the backend's
    ("UnknownBlock: State already discarded for 0x..", "Header was not found ..").
    """
    if code in AUTHOR_ERROR_CODES:
        return ExtrinsicRejectedError(method, code, message, data)
    if code in (STATE_CLIENT_ERROR, CHAIN_CLIENT_ERROR):
        text = f"{message} {data or ''}".lower()
        if "discarded" in text or "pruned" in text:
            return StateUnavailableError(method, code, message, data)
        if "unknownblock" in text or "unknown block" in text or "not found" in text:
            return UnknownBlockError(f"{method}: {message}")
    return NodeRpcError(method, code, message, data)
