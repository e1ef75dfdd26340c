"""Errors of the STF (tocw.stf).

The tree separates the three things a caller must tell apart: the STF could not be built,
an operation was refused before it touched state (no nonce bump, not a Merkle leaf), and an
accepted call failed (nonce bumped, its own writes reverted). `CallOutcome.error` carries the
last two; everything else is raised.

StfError
├── StfBuildError               the chosen modules cannot form one STF (unknown name, clashing
│                               index range, index or namespace, a missing required module)
├── OperationDecodeError        bytes are not an operation, call or getter of this STF
├── UnsupportedOperationError   a call/getter value that no enabled module handles
├── InvalidEnvError             a CallEnv with malformed fields (e.g. a 31-byte shard)
├── StateError                  State API misuse, or a stored value that does not decode
├── RejectedOperationError      refused before touching state
│   ├── InvalidSignatureError   signature does not verify (also primitives' InvalidSignatureError)
│   ├── NonceMismatchError      call nonce != the signer's account nonce
│   └── NonceExhaustedError     the signer's nonce is u32::MAX and cannot be bumped
└── DispatchError               accepted, then failed: only the nonce bump remains
    ├── BadOriginError          wrong caller (not root, client sent an enclave-only call, ...)
    ├── InsufficientBalanceError
    ├── BalanceOverflowError    a balance or the total issuance would exceed u128
    ├── WrongShardError         the call names another shard than the one executing it
    ├── InvalidTimestampError   the parentchain time went backwards
    └── module errors, defined next to their module, e.g. tocw.stf.modules.auction.AuctionError
"""

from __future__ import annotations

from tocw.primitives import errors as primitives_errors


class StfError(Exception):
    """Root of every error raised or reported by tocw.stf."""


class StfBuildError(StfError, ValueError):
    pass


class OperationDecodeError(StfError, ValueError):
    pass


class UnsupportedOperationError(StfError, TypeError):
    pass


class InvalidEnvError(StfError, ValueError):
    pass


class StateError(StfError, RuntimeError):
    pass


class RejectedOperationError(StfError):
    """The operation was refused as a whole: state untouched, the call is no Merkle leaf."""


class InvalidSignatureError(RejectedOperationError, primitives_errors.InvalidSignatureError):
    pass


class NonceMismatchError(RejectedOperationError):
    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"nonce mismatch: account nonce is {expected}, call has {got}")
        self.expected = expected
        self.got = got


class NonceExhaustedError(RejectedOperationError):
    pass


class DispatchError(StfError):
    """An accepted call failed: the nonce bump stays, every other write is rolled back."""


class BadOriginError(DispatchError):
    pass


class InsufficientBalanceError(DispatchError):
    pass


class BalanceOverflowError(DispatchError):
    pass


class WrongShardError(DispatchError):
    pass


class InvalidTimestampError(DispatchError):
    pass
