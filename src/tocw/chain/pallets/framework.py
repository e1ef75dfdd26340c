"""The pallet framework: how a pallet declares itself, and what its calls see when they run.

A pallet module declares, once each: its calls (index, name, argument fields, weight, handler),
events, errors, storage items and constants, and bundles them in a `PalletDef`. From these the
runtime derives call decoders and the outer RuntimeCall/RuntimeEvent, and tocw.chain.metadata
the V14 metadata; nothing restates an index or a type elsewhere. This is FRAME's
`#[pallet::call]` / `#[pallet::event]` / `#[pallet::storage]` as plain data.

A call handler is a free function `handler(env, origin, *args) -> None` that raises
`DispatchError` to fail. It runs inside a storage layer (`Overlay`) that is committed only on
success, as FRAME makes every dispatch transactional, and deposits events through `env`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Generic, Protocol, TypeVar

from tocw.chain.errors import (
    ArithmeticErrorKind,
    DispatchError,
    DispatchErrorKind,
    TokenError,
    TransactionalError,
)
from tocw.chain.pallets.scaleinfo import Field, TypeInfo
from tocw.chain.pallets.substrate_types import (
    DispatchClass,
    EncodedDispatchError,
    Pays,
    Weight,
)
from tocw.primitives.errors import ScaleDecodeError
from tocw.primitives.hashing import STORAGE_HASHERS, Hasher, storage_prefix
from tocw.primitives.scale import Codec, Tuple

K = TypeVar("K")
V = TypeVar("V")

# --- state --------------------------------------------------------------------------------------


class StorageView(Protocol):
    """What the runtime reads and writes during one block (or one validation)."""

    def get(self, key: bytes) -> bytes | None: ...

    def set(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def keys_with_prefix(self, prefix: bytes) -> Iterator[bytes]:
        """Keys starting with `prefix`, in ascending byte order."""
        ...


_MISSING = object()


class Overlay:
    """A storage layer over another view: reads fall through, writes stay here until `commit`.

    Used for FRAME's transactional dispatch (a failed call leaves no trace) and for validation
    (which must never write to the node's state).
    """

    __slots__ = ("changes", "parent")

    def __init__(self, parent: StorageView) -> None:
        self.parent = parent
        self.changes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        value = self.changes.get(key, _MISSING)
        if value is _MISSING:
            return self.parent.get(key)
        return value  # type: ignore[return-value]

    def set(self, key: bytes, value: bytes) -> None:
        self.changes[key] = value

    def delete(self, key: bytes) -> None:
        self.changes[key] = None

    def keys_with_prefix(self, prefix: bytes) -> Iterator[bytes]:
        keys = set(self.parent.keys_with_prefix(prefix))
        for key, value in self.changes.items():
            if key.startswith(prefix):
                if value is None:
                    keys.discard(key)
                else:
                    keys.add(key)
        return iter(sorted(keys))

    def commit(self) -> None:
        parent = self.parent
        for key, value in self.changes.items():
            if value is None:
                parent.delete(key)
            else:
                parent.set(key, value)
        self.changes.clear()


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GenesisConfig:
    """Accounts and keys of the first block; tocw.chain.genesis builds the dev one."""

    endowed: tuple[tuple[bytes, int], ...]
    sudo_key: bytes | None
    grandpa_authorities: tuple[tuple[bytes, int], ...]


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """Everything that parameterises the runtime. Frozen: one config, one metadata.

    Amounts are in the smallest unit (TEER has 12 decimals). `genesis=None` means the dev
    genesis (tocw.chain.genesis.dev_genesis) when `dev` is set.
    """

    dev: bool = True
    allow_skipping_attestation: bool = True
    sgx_allow_debug_mode: bool = True
    existential_deposit: int = 1_000_000_000  # 0.001 TEER
    transaction_base_fee: int = 100_000_000
    transaction_byte_fee: int = 1_000_000
    minimum_period_ms: int = 1
    ss58_format: int = 42
    token_symbol: str = "TEER"
    token_decimals: int = 12
    genesis: GenesisConfig | None = None

    def __post_init__(self) -> None:
        if self.existential_deposit <= 0:
            raise ValueError("existential_deposit must be positive (Substrate requires it)")
        if self.minimum_period_ms <= 0:
            raise ValueError("minimum_period_ms must be positive (clients divide by it)")
        if self.transaction_base_fee < 0 or self.transaction_byte_fee < 0:
            raise ValueError("fees cannot be negative")


# --- origins ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signed:
    who: bytes


@dataclass(frozen=True, slots=True)
class RootOrigin:
    pass


@dataclass(frozen=True, slots=True)
class NoneOrigin:
    pass


ROOT = RootOrigin()
NONE = NoneOrigin()
Origin = Signed | RootOrigin | NoneOrigin


def ensure_signed(origin: Origin) -> bytes:
    if isinstance(origin, Signed):
        return origin.who
    raise DispatchError.bad_origin("a signed origin is required")


def ensure_root(origin: Origin) -> None:
    if not isinstance(origin, RootOrigin):
        raise DispatchError.bad_origin("the root origin is required (use Sudo.sudo)")


def ensure_none(origin: Origin) -> None:
    if not isinstance(origin, NoneOrigin):
        raise DispatchError.bad_origin("only an inherent (unsigned) may make this call")


def ensure_signed_or_root(origin: Origin) -> bytes | None:
    if isinstance(origin, Signed):
        return origin.who
    if isinstance(origin, RootOrigin):
        return None
    raise DispatchError.bad_origin("a signed or root origin is required")


# --- declarations -------------------------------------------------------------------------------

Handler = Callable[..., None]


@dataclass(frozen=True, slots=True)
class CallDef:
    """One dispatchable: `handler(env, origin, *args)` with args decoded per `fields`."""

    index: int
    name: str
    fields: tuple[Field, ...]
    handler: Handler
    weight: Weight
    dispatch_class: DispatchClass = DispatchClass.Normal
    pays_fee: Pays = Pays.Yes
    docs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EventDef:
    pallet: str
    index: int
    name: str
    fields: tuple[Field, ...] = ()
    docs: tuple[str, ...] = ()
    codec: Codec[tuple[Any, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "codec", Tuple(*(f.ty.codec for f in self.fields)))


@dataclass(frozen=True, slots=True)
class ErrorDef:
    pallet: str
    index: int
    name: str
    docs: tuple[str, ...] = ()

    def error(self, message: str = "") -> DispatchError:
        """The DispatchError::Module to raise for this error."""
        return DispatchError.module(self.pallet, self.index, self.name, message)


@dataclass(frozen=True, slots=True)
class ConstantDef:
    name: str
    ty: TypeInfo
    value: Callable[[RuntimeConfig], Any]
    docs: tuple[str, ...] = ()

    def encoded(self, config: RuntimeConfig) -> bytes:
        return self.ty.codec.encode(self.value(config))


class StorageItem:
    """What storage entries share: their key prefix, value type and query kind.

    `default` is None for FRAME's OptionQuery (absent = None) and the default value for
    ValueQuery (absent = default), which is also what the metadata advertises. Items whose
    value type has no Python codec (System.Events, written by the runtime as raw bytes) give
    their default as `raw_default` instead.
    """

    __slots__ = (
        "_codec",
        "_raw_default",
        "default",
        "docs",
        "name",
        "pallet",
        "prefix",
        "value_ty",
    )

    def __init__(
        self,
        pallet: str,
        name: str,
        value: TypeInfo,
        default: Any,
        raw_default: bytes | None,
        docs: Sequence[str],
    ) -> None:
        self.pallet = pallet
        self.name = name
        self.value_ty = value
        self.default = default
        self._raw_default = raw_default
        self._codec: Codec[Any] | None = None
        self.docs = tuple(docs)
        self.prefix = storage_prefix(pallet, name)

    @property
    def value_codec(self) -> Codec[Any]:
        if self._codec is None:
            self._codec = self.value_ty.codec
        return self._codec

    @property
    def is_optional(self) -> bool:
        return self.default is None and self._raw_default is None

    def default_bytes(self) -> bytes:
        if self._raw_default is not None:
            return self._raw_default
        if self.default is None:
            return b"\x00"
        return self.value_codec.encode(self.default)

    def _decode(self, raw: bytes) -> Any:
        try:
            return self.value_codec.decode(raw)
        except ScaleDecodeError as e:
            raise DispatchError(
                DispatchErrorKind.Corruption, message=f"{self.pallet}.{self.name}: {e}"
            ) from None


class StorageValue(StorageItem, Generic[V]):
    __slots__ = ()

    def __init__(
        self,
        pallet: str,
        name: str,
        value: TypeInfo,
        default: V | None = None,
        *,
        raw_default: bytes | None = None,
        docs: Sequence[str] = (),
    ) -> None:
        super().__init__(pallet, name, value, default, raw_default, docs)

    def get(self, state: StorageView) -> V | None:
        raw = state.get(self.prefix)
        return None if raw is None else self._decode(raw)

    def value(self, state: StorageView) -> V:
        raw = state.get(self.prefix)
        if raw is None:
            if self.default is None:
                raise TypeError(f"{self.pallet}.{self.name} has no default; use get()")
            return self.default  # type: ignore[no-any-return]
        return self._decode(raw)  # type: ignore[no-any-return]

    def put(self, state: StorageView, value: V) -> None:
        state.set(self.prefix, self.value_codec.encode(value))

    def kill(self, state: StorageView) -> None:
        state.delete(self.prefix)


# Bytes of hash before the key itself, for the hashers that keep the key.
_CONCAT_SKIP = {"Blake2_128Concat": 16, "Twox64Concat": 8, "Identity": 0}


class StorageMap(StorageItem, Generic[K, V]):
    """A map with one key; `hasher` is the metadata name (Blake2_128Concat, Twox64Concat, ...)."""

    __slots__ = ("_hash", "hasher", "key_codec", "key_ty", "suffix_skip")

    def __init__(
        self,
        pallet: str,
        name: str,
        hasher: str,
        key: TypeInfo,
        value: TypeInfo,
        default: V | None = None,
        *,
        raw_default: bytes | None = None,
        docs: Sequence[str] = (),
    ) -> None:
        super().__init__(pallet, name, value, default, raw_default, docs)
        self.hasher = hasher
        self._hash: Hasher = STORAGE_HASHERS[hasher]
        self.key_ty = key
        self.key_codec: Codec[Any] = key.codec
        self.suffix_skip = _CONCAT_SKIP.get(hasher)

    def key(self, key: K) -> bytes:
        return self.prefix + self._hash(self.key_codec.encode(key))

    def get(self, state: StorageView, key: K) -> V | None:
        raw = state.get(self.key(key))
        return None if raw is None else self._decode(raw)

    def value(self, state: StorageView, key: K) -> V:
        raw = state.get(self.key(key))
        if raw is None:
            if self.default is None:
                raise TypeError(f"{self.pallet}.{self.name} has no default; use get()")
            return self.default  # type: ignore[no-any-return]
        return self._decode(raw)  # type: ignore[no-any-return]

    def contains(self, state: StorageView, key: K) -> bool:
        return state.get(self.key(key)) is not None

    def insert(self, state: StorageView, key: K, value: V) -> None:
        state.set(self.key(key), self.value_codec.encode(value))

    def remove(self, state: StorageView, key: K) -> None:
        state.delete(self.key(key))

    def storage_keys(self, state: StorageView) -> Iterator[bytes]:
        return state.keys_with_prefix(self.prefix)

    def keys(self, state: StorageView) -> Iterator[K]:
        """Decoded map keys (only for hashers that keep the key: *Concat and Identity)."""
        if self.suffix_skip is None:
            raise TypeError(f"{self.pallet}.{self.name}: {self.hasher} does not keep the key")
        start = len(self.prefix) + self.suffix_skip
        for raw in state.keys_with_prefix(self.prefix):
            yield self.key_codec.decode(raw[start:])


@dataclass(frozen=True, slots=True)
class PalletDef:
    """A pallet as the runtime and the metadata see it. Its index is its place in the runtime."""

    name: str
    calls: tuple[CallDef, ...] = ()
    events: tuple[EventDef, ...] = ()
    errors: tuple[ErrorDef, ...] = ()
    storage: tuple[StorageItem, ...] = ()
    constants: tuple[ConstantDef, ...] = ()
    crate: str = ""  # the Rust crate, for the type paths of its Call/Event/Error enums
    type_params: tuple[str, ...] = ("T",)
    docs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for kind, items in (("event", self.events), ("error", self.errors)):
            indices = [i.index for i in items]
            if indices != list(range(len(items))):
                raise ValueError(f"{self.name}: {kind} indices {indices} must be 0..n-1 in order")
            if any(i.pallet != self.name for i in items):
                raise ValueError(f"{self.name}: an {kind} is declared for another pallet")
        call_indices = [c.index for c in self.calls]
        if len(set(call_indices)) != len(call_indices):
            raise ValueError(f"{self.name}: duplicate call indices {call_indices}")
        names = [s.name for s in self.storage]
        if len(set(names)) != len(names) or any(s.pallet != self.name for s in self.storage):
            raise ValueError(f"{self.name}: storage names must be unique and of this pallet")

    def call_named(self, name: str) -> CallDef:
        for call in self.calls:
            if call.name == name:
                return call
        raise KeyError(f"{self.name} has no call {name!r}")


# --- execution ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """A decoded RuntimeCall: which pallet and call, its arguments, and its exact bytes."""

    pallet: PalletDef
    pallet_index: int
    definition: CallDef
    args: tuple[Any, ...]
    encoded: bytes

    @property
    def name(self) -> str:
        return f"{self.pallet.name}.{self.definition.name}"

    def __repr__(self) -> str:
        return f"Call({self.name}{self.args!r})"


@dataclass(frozen=True, slots=True)
class EmittedEvent:
    """An event as deposited: its declaration, Python arguments and RuntimeEvent bytes."""

    definition: EventDef
    args: tuple[Any, ...]
    encoded: bytes
    topics: tuple[bytes, ...] = ()


class CallEnv:
    """What a running call sees: the state layer, the block, the config and an event sink."""

    __slots__ = ("block_number", "config", "events", "pallet_indices", "state")

    def __init__(
        self,
        state: StorageView,
        block_number: int,
        config: RuntimeConfig,
        pallet_indices: dict[str, int],
    ) -> None:
        self.state = state
        self.block_number = block_number
        self.config = config
        self.pallet_indices = pallet_indices
        self.events: list[EmittedEvent] = []

    def child(self, state: StorageView) -> CallEnv:
        return CallEnv(state, self.block_number, self.config, self.pallet_indices)

    def deposit_event(self, event: EventDef, *args: Any, topics: Sequence[bytes] = ()) -> None:
        head = bytes((self.pallet_indices[event.pallet], event.index))
        self.events.append(
            EmittedEvent(event, args, head + event.codec.encode(args), tuple(topics))
        )

    def encode_error(self, error: DispatchError) -> EncodedDispatchError:
        """SCALE of the DispatchError (Module errors get their pallet's index here)."""
        text = str(error)
        if error.kind is DispatchErrorKind.Module:
            pallet = self.pallet_indices[error.pallet]
            data = bytes((int(error.kind), pallet, error.index, 0, 0, 0))
        elif error.sub is not None:
            data = bytes((int(error.kind), int(error.sub)))
        else:
            data = bytes((int(error.kind),))
        return EncodedDispatchError(data, text)

    def dispatch(self, call: Call, origin: Origin) -> EncodedDispatchError | None:
        """Run `call` transactionally: its writes and events are kept only if it succeeds."""
        layer = Overlay(self.state)
        inner = self.child(layer)
        try:
            call.definition.handler(inner, origin, *call.args)
        except DispatchError as e:
            return self.encode_error(e)
        layer.commit()
        self.events.extend(inner.events)
        return None


def describe_encoded_error(error: EncodedDispatchError, pallets: Sequence[PalletDef]) -> str:
    """Human text of an encoded DispatchError ("Balances.InsufficientBalance"), for logs."""
    data = error.data
    kind = DispatchErrorKind(data[0])
    if kind is DispatchErrorKind.Module and len(data) >= 3 and data[1] < len(pallets):
        pallet = pallets[data[1]]
        if data[2] < len(pallet.errors):
            return f"{pallet.name}.{pallet.errors[data[2]].name}"
        return f"{pallet.name}.error#{data[2]}"
    sub_kinds: dict[DispatchErrorKind, type[IntEnum]] = {
        DispatchErrorKind.Token: TokenError,
        DispatchErrorKind.Arithmetic: ArithmeticErrorKind,
        DispatchErrorKind.Transactional: TransactionalError,
    }
    sub = sub_kinds.get(kind)
    if sub is not None and len(data) >= 2 and data[1] < len(sub):
        return f"{kind.name}.{sub(data[1]).name}"
    return kind.name
