"""Errors of the dev chain (runtime and node): the root, the runtime's errors, and the tree.

Every error tocw.chain raises is a ChainError. The runtime's are defined here; the node's next
to the code that raises them (module in brackets).

ChainError                          root of every error raised by tocw.chain
├── InvalidTransactionError         an extrinsic is rejected before it can enter a block (pool
│                                   or block builder); `reason` is Substrate's variant name,
│                                   `str()` its text
├── UnknownRuntimeApiError          state_call of a function the runtime does not export
├── RuntimeApiError                 state_call with parameters the function cannot decode
├── BlockExecutionError             the node asked the runtime to build an impossible block
├── DispatchError                   a dispatched call failed; the runtime turns it into
│                                   System.ExtrinsicFailed / Sudo.Sudid(Err); never leaves it
├── StoreError          [storage]   the block and state store
│   ├── UnknownBlockError           no block with that hash
│   ├── StateDiscardedError         the block is known, its state left the retained window
│   └── CorruptStoreError           the database contradicts itself
├── PoolError           [pool]      the transaction pool refuses a transaction
│   ├── AlreadyImportedError        the same extrinsic is already in the pool
│   ├── TemporarilyBannedError      included or found invalid recently
│   ├── TooLowPriorityError         another transaction provides the same tag, >= priority
│   └── ImmediatelyDroppedError     the pool is full
├── FinalityError       [finality]  the node's voter is not an authority of the current set
├── ServerError         [server]    the RPC server cannot start (e.g. the port is taken)
│   └── BadRequestError             a request head that is not HTTP/1.x (answered with 400)
├── NodeError           [node]      the node cannot start or continue (bad configuration, a
│                                   different chain on disk, another node on the base path)
└── DevChainStartError  [testing]   a test's dev chain did not come up (also a RuntimeError)

JSON-RPC errors are not ChainErrors: the node answers with tocw.rpc.errors.RpcError, the
project's one JSON-RPC error type, and maps the errors above to Substrate's codes in exactly one
place (rpc_methods: `RpcApi.call` and `_pool_error`). The runtime only says what went wrong, in
Substrate's own words where Substrate has words for it, so that client libraries that match on
them keep working.
"""

from __future__ import annotations

from enum import IntEnum


class ChainError(Exception):
    """Root of every error raised by tocw.chain."""


# Substrate's `TransactionValidityError` texts (sp-runtime transaction_validity.rs), which nodes
# send as the `data` of JSON-RPC error 1010. "BadFormat" is the decode failure the pool reports
# as "Extrinsic has invalid format" before any validity check runs.
_INVALID_TEXTS: dict[str, str] = {
    "Call": "Transaction call is not expected",
    "Payment": "Inability to pay some fees (e.g. account balance too low)",
    "Future": "Transaction will be valid in the future",
    "Stale": "Transaction is outdated",
    "BadProof": "Transaction has a bad signature",
    "AncientBirthBlock": "Transaction has an ancient birth block",
    "ExhaustsResources": "Transaction would exhaust the block limits",
    "BadMandatory": "A call was labelled as mandatory, but resulted in an Error.",
    "MandatoryValidation": (
        "Transaction dispatch is mandatory; transactions may not have mandatory dispatches."
    ),
    "BadSigner": "Invalid signing address",
    "CannotLookup": "Could not lookup information required to validate the transaction",
    "NoUnsignedValidator": "Could not find an unsigned validator for the unsigned transaction",
    "BadFormat": "Extrinsic has invalid format",
}

INVALID_TRANSACTION_REASONS = frozenset(_INVALID_TEXTS)


class InvalidTransactionError(ChainError):
    """An extrinsic that must not enter a block.

    `reason` is one of INVALID_TRANSACTION_REASONS (Substrate's InvalidTransaction /
    UnknownTransaction variant names plus "BadFormat" for undecodable bytes); `detail` says what
    exactly was wrong with this extrinsic. `str(e)` is Substrate's text followed by the detail.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in _INVALID_TEXTS:
            raise ValueError(f"unknown invalid-transaction reason {reason!r}")
        self.reason = reason
        self.detail = detail
        text = _INVALID_TEXTS[reason]
        super().__init__(f"{text}: {detail}" if detail else text)

    @property
    def is_unknown(self) -> bool:
        """True for Substrate's UnknownTransaction class (may become valid; not banned)."""
        return self.reason in ("CannotLookup", "NoUnsignedValidator")

    @property
    def may_become_valid(self) -> bool:
        """True when the same bytes can be valid in a later block (future nonce, full block)."""
        return self.reason in ("Future", "ExhaustsResources")


class UnknownRuntimeApiError(ChainError):
    """state_call of a function that is not exported. The message is exactly Substrate's
    ("Exported method X is not found"), which async-substrate-interface matches to fall back."""

    def __init__(self, method: str) -> None:
        self.method = method
        super().__init__(f"Exported method {method} is not found")


class RuntimeApiError(ChainError):
    """A runtime API function was called with parameters it cannot decode."""


class BlockExecutionError(ChainError):
    """The node asked for a block the runtime cannot build (wrong number, no parent state)."""


# --- DispatchError (sp_runtime::DispatchError of polkadot-v0.9.42) -----------------------------


class TokenError(IntEnum):
    FundsUnavailable = 0
    OnlyProvider = 1
    BelowMinimum = 2
    CannotCreate = 3
    UnknownAsset = 4
    Frozen = 5
    Unsupported = 6
    CannotCreateHold = 7
    NotExpendable = 8


class ArithmeticErrorKind(IntEnum):
    """sp_arithmetic::ArithmeticError (renamed here so it does not shadow the builtin)."""

    Underflow = 0
    Overflow = 1
    DivisionByZero = 2


class TransactionalError(IntEnum):
    LimitReached = 0
    NoLayer = 1


class DispatchErrorKind(IntEnum):
    """Variant indices of sp_runtime::DispatchError."""

    Other = 0
    CannotLookup = 1
    BadOrigin = 2
    Module = 3
    ConsumerRemaining = 4
    NoProviders = 5
    TooManyConsumers = 6
    Token = 7
    Arithmetic = 8
    Transactional = 9
    Exhausted = 10
    Corruption = 11
    Unavailable = 12


class DispatchError(ChainError):
    """A call failed. Raised by pallet code, caught by the runtime's dispatcher.

    `kind` is the DispatchError variant; Module errors carry the pallet name and the error's
    index and name (the runtime resolves the pallet's index when it encodes the error), Token /
    Arithmetic / Transactional errors carry their inner variant in `sub`.
    """

    def __init__(
        self,
        kind: DispatchErrorKind,
        *,
        pallet: str = "",
        index: int = 0,
        name: str = "",
        sub: IntEnum | None = None,
        message: str = "",
    ) -> None:
        self.kind = kind
        self.pallet = pallet
        self.index = index
        self.name = name
        self.sub = sub
        self.message = message
        super().__init__(self.describe())

    def describe(self) -> str:
        if self.kind is DispatchErrorKind.Module:
            text = f"{self.pallet}.{self.name}"
        elif self.sub is not None:
            text = f"{self.kind.name}.{self.sub.name}"
        else:
            text = self.kind.name
        return f"{text}: {self.message}" if self.message else text

    @classmethod
    def module(cls, pallet: str, index: int, name: str, message: str = "") -> DispatchError:
        return cls(DispatchErrorKind.Module, pallet=pallet, index=index, name=name, message=message)

    @classmethod
    def bad_origin(cls, message: str = "") -> DispatchError:
        return cls(DispatchErrorKind.BadOrigin, message=message)

    @classmethod
    def cannot_lookup(cls, message: str = "") -> DispatchError:
        return cls(DispatchErrorKind.CannotLookup, message=message)

    @classmethod
    def token(cls, sub: TokenError, message: str = "") -> DispatchError:
        return cls(DispatchErrorKind.Token, sub=sub, message=message)

    @classmethod
    def arithmetic(cls, sub: ArithmeticErrorKind, message: str = "") -> DispatchError:
        return cls(DispatchErrorKind.Arithmetic, sub=sub, message=message)

    @classmethod
    def other(cls, message: str) -> DispatchError:
        return cls(DispatchErrorKind.Other, message=message)
