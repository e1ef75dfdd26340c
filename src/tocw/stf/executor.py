"""The state transition function: trusted operations in, state changes and outcomes out.

Owns `Stf` (an STF built from a chosen set of modules: its SCALE codecs and dispatch tables)
and the execution rules of PROTOCOL.md "Trusted calls", which read top-down:

    execute_call
      validate_call_signature   (client calls: over call ‖ nonce ‖ mrenclave ‖ shard)
      validate_nonce            (nonce == the signer's account nonce)
      increment_nonce           (stays even if the call then fails)
      process_call              (origin check + the module's apply, in a sub-transaction)
    execute_enclave_call        (balance_shield, timestamp_set: no signature, no nonce)
    execute_getter              (trusted getters: the signature must be the asked account's)

Pure: no clock, randomness or I/O; everything a call may know comes in `CallEnv`, so every
worker that executes the same calls in the same order reaches the same state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tocw.primitives.errors import PrimitivesError
from tocw.primitives.hashing import binary_merkle_root, blake2_256
from tocw.primitives.scale import Codec, Enum
from tocw.primitives.trusted import (
    Getter,
    PublicGetterOp,
    TrustedCall,
    TrustedCallSigned,
    TrustedCodecs,
    TrustedGetterOp,
    TrustedGetterSigned,
    TrustedOperation,
    check_call_signature,
    check_getter_signature,
)
from tocw.primitives.types import MAX_U32, AccountId, Nonce
from tocw.stf.errors import (
    BadOriginError,
    DispatchError,
    InvalidSignatureError,
    NonceExhaustedError,
    NonceMismatchError,
    OperationDecodeError,
    RejectedOperationError,
    StfBuildError,
    UnsupportedOperationError,
)
from tocw.stf.state import State, StateView
from tocw.stf.system import SYSTEM_NAMESPACE, account_nonce, set_account_nonce
from tocw.stf.types import (
    CallContext,
    CallEnv,
    CallOutcome,
    CallSpec,
    GetterSpec,
    Origin,
    StfModule,
)

_MAX_INDEX = 255

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Stf:
    """An STF built from a chosen, validated set of modules. Build it with `Stf.from_modules`
    (or tocw.stf.registry.build_stf by module names)."""

    modules: tuple[StfModule, ...]
    codecs: TrustedCodecs
    calls: Mapping[type, CallSpec]
    public_getters: Mapping[type, GetterSpec]
    trusted_getters: Mapping[type, GetterSpec]

    @staticmethod
    def from_modules(modules: Sequence[StfModule]) -> Stf:
        """Validate the module set and build codecs and dispatch tables; StfBuildError if the
        modules clash (indices, ranges, namespaces, variant classes) or miss a requirement."""
        validate_module_set(modules)
        codecs = TrustedCodecs.build(
            Enum("TrustedCall", {}), Enum("PublicGetter", {}), Enum("TrustedGetter", {})
        )
        calls: dict[type, CallSpec] = {}
        public: dict[type, GetterSpec] = {}
        trusted: dict[type, GetterSpec] = {}
        for module in modules:
            try:
                codecs = codecs.extend(
                    calls={s.index: s.codec for s in module.calls},
                    public_getters={s.index: s.codec for s in module.public_getters},
                    trusted_getters={s.index: s.codec for s in module.trusted_getters},
                )
            except (ValueError, TypeError) as e:
                raise StfBuildError(f"module {module.name!r}: {e}") from None
            calls.update((s.cls, s) for s in module.calls)
            public.update((s.cls, s) for s in module.public_getters)
            trusted.update((s.cls, s) for s in module.trusted_getters)
        return Stf(tuple(modules), codecs, calls, public, trusted)

    @property
    def module_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modules)

    # -- decoding -------------------------------------------------------------------------------

    def decode_operation(self, data: bytes) -> TrustedOperation:
        """SCALE(TrustedOperation) -> value; OperationDecodeError for anything else, including
        calls and getters of modules this STF was not built with."""
        return _decode(self.codecs.operation, data, "TrustedOperation")

    def decode_call_signed(self, data: bytes) -> TrustedCallSigned:
        return _decode(self.codecs.call_signed, data, "TrustedCallSigned")

    def decode_getter(self, data: bytes) -> Getter:
        """SCALE(Getter), the plaintext `cyphertext` of state_executeGetter's Request."""
        return _decode(self.codecs.getter, data, "Getter")

    def call_hash(self, signed: TrustedCallSigned) -> bytes:
        """blake2_256(SCALE(TrustedCallSigned)): the unshield call_hash and the Merkle leaf."""
        return blake2_256(self.codecs.call_signed.encode(signed))

    # -- calls ----------------------------------------------------------------------------------

    def execute_call(
        self,
        state: State,
        signed: TrustedCallSigned,
        env: CallEnv,
        origin: Origin = Origin.CLIENT,
    ) -> CallOutcome:
        """Execute one signed call. Rejections and failures are reported in the outcome, not
        raised; a call of a module this STF lacks raises UnsupportedOperationError.

        origin=ENCLAVE skips the signature check: only for calls the enclave built and signed
        itself. Calls from EnclaveBridge.invoke are always CLIENT.
        """
        spec = self._call_spec(signed.call)
        try:
            if origin is Origin.CLIENT:
                validate_call_signature(self.codecs, signed, env)
            validate_nonce(state, signed)
        except RejectedOperationError as e:
            return CallOutcome(accepted=False, success=False, error=e)
        increment_nonce(state, signed.call.signer)
        call_hash = self.call_hash(signed)
        outcome = process_call(state, spec, signed.call, CallContext(env, origin, call_hash))
        return dataclasses.replace(outcome, call_hash=call_hash)

    def execute_enclave_call(self, state: State, call: TrustedCall, env: CallEnv) -> CallOutcome:
        """Execute a call the enclave created from parentchain events (balance_shield,
        timestamp_set): no signature, no nonce, never a Merkle leaf. Any other call raises
        UnsupportedOperationError: clients' calls go through execute_call."""
        spec = self._call_spec(call)
        if not spec.enclave_only:
            raise UnsupportedOperationError(f"{type(call).__name__} is not an enclave call")
        call_hash = blake2_256(self.codecs.call.encode(call))
        return process_call(state, spec, call, CallContext(env, Origin.ENCLAVE, call_hash))

    def _call_spec(self, call: TrustedCall) -> CallSpec:
        spec = self.calls.get(type(call))
        if spec is None:
            raise UnsupportedOperationError(
                f"{type(call).__name__} is not a call of modules {self.module_names}"
            )
        return spec

    # -- getters --------------------------------------------------------------------------------

    def execute_getter(self, state: StateView, getter: Getter) -> bytes | None:
        """SCALE bytes of the answer, or None when there is nothing to answer (e.g. an unknown
        auction). A trusted getter whose signature does not verify for the account it asks
        about raises InvalidSignatureError: the caller learns it was refused, not "no value"."""
        if isinstance(getter, PublicGetterOp):
            spec = self.public_getters.get(type(getter.getter))
            if spec is None:
                raise UnsupportedOperationError(f"{type(getter.getter).__name__} is not served")
            return spec.get(state, getter.getter)
        if isinstance(getter, TrustedGetterOp):
            spec = self.trusted_getters.get(type(getter.signed.getter))
            if spec is None:
                raise UnsupportedOperationError(
                    f"{type(getter.signed.getter).__name__} is not served"
                )
            validate_getter_signature(self.codecs, getter.signed)
            return spec.get(state, getter.signed.getter)
        raise UnsupportedOperationError(f"{type(getter).__name__} is not a Getter")


# -- the execution rules, top-down --------------------------------------------------------------


def validate_call_signature(codecs: TrustedCodecs, signed: TrustedCallSigned, env: CallEnv) -> None:
    """The signature must verify for the call's signer over call ‖ nonce ‖ mrenclave ‖ shard."""
    if not check_call_signature(codecs, signed, env.mrenclave, env.shard):
        raise InvalidSignatureError(
            f"signature of {type(signed.call).__name__} does not verify for "
            f"0x{bytes(signed.call.signer).hex()} on this shard and mrenclave"
        )


def validate_nonce(state: StateView, signed: TrustedCallSigned) -> None:
    """The call's nonce must equal the signer's account nonce, which must still be bumpable."""
    expected = account_nonce(state, signed.call.signer)
    if signed.nonce != expected:
        raise NonceMismatchError(expected, signed.nonce)
    if expected >= MAX_U32:
        raise NonceExhaustedError(f"nonce of 0x{bytes(signed.call.signer).hex()} is exhausted")


def increment_nonce(state: State, who: AccountId) -> None:
    set_account_nonce(state, who, Nonce(account_nonce(state, who) + 1))


def process_call(state: State, spec: CallSpec, call: Any, ctx: CallContext) -> CallOutcome:
    """Apply an accepted call in its own transaction: a DispatchError rolls back its writes
    and is reported; any other exception (a module bug) rolls back and propagates, so a worker
    stops loudly instead of confirming a block whose result depends on a bug."""
    try:
        with state.transaction():
            if spec.enclave_only and ctx.origin is not Origin.ENCLAVE:
                raise BadOriginError(
                    f"{type(call).__name__} is created by the enclave only, never by a client"
                )
            effects = tuple(spec.apply(state, call, ctx))
    except DispatchError as e:
        return CallOutcome(accepted=True, success=False, error=e)
    return CallOutcome(accepted=True, success=True, effects=effects)


def validate_getter_signature(codecs: TrustedCodecs, signed: TrustedGetterSigned) -> None:
    if not check_getter_signature(codecs, signed):
        raise InvalidSignatureError(
            f"signature of {type(signed.getter).__name__} does not verify for "
            f"0x{bytes(signed.getter.signer).hex()}"
        )


def trusted_calls_root(outcomes: Iterable[CallOutcome]) -> bytes:
    """PROTOCOL.md trusted_calls_merkle_root over the outcomes of one block's invoked calls,
    in block order: leaves are the call hashes of the accepted ones."""
    return binary_merkle_root(o.call_hash for o in outcomes if o.accepted and o.call_hash)


# -- building -----------------------------------------------------------------------------------


def validate_module_set(modules: Sequence[StfModule]) -> None:
    """Raise StfBuildError unless the modules can form one STF."""
    if not modules:
        raise StfBuildError("an STF needs at least one module")
    names = [m.name for m in modules]
    if len(set(names)) != len(names):
        raise StfBuildError(f"module listed twice in {names}")
    owner_of_namespace: dict[str, str] = {}
    for module in modules:
        validate_module(module)
        for ns in module.namespaces:
            if ns == SYSTEM_NAMESPACE:
                raise StfBuildError(f"module {module.name!r}: namespace {ns!r} is reserved")
            if ns in owner_of_namespace:
                raise StfBuildError(
                    f"modules {owner_of_namespace[ns]!r} and {module.name!r} "
                    f"both claim namespace {ns!r}"
                )
            owner_of_namespace[ns] = module.name
        missing = [r for r in module.requires if r not in names]
        if missing:
            raise StfBuildError(f"module {module.name!r} requires modules {missing}")
    for i, a in enumerate(modules):
        for b in modules[i + 1 :]:
            if set(a.indices) & set(b.indices):
                raise StfBuildError(
                    f"index ranges of {a.name!r} ({_fmt(a.indices)}) and "
                    f"{b.name!r} ({_fmt(b.indices)}) overlap"
                )


def validate_module(module: StfModule) -> None:
    r = module.indices
    if r.step != 1 or len(r) == 0 or r.start < 0 or r.stop - 1 > _MAX_INDEX:
        raise StfBuildError(f"module {module.name!r}: bad index range {r!r}")
    kinds: tuple[tuple[str, Sequence[CallSpec | GetterSpec], bool], ...] = (
        ("call", module.calls, True),
        ("public getter", module.public_getters, False),
        ("trusted getter", module.trusted_getters, True),
    )
    for kind, specs, signed in kinds:
        seen: set[int] = set()
        for spec in specs:
            if spec.index not in r:
                raise StfBuildError(
                    f"module {module.name!r}: {kind} index {spec.index} outside {_fmt(r)}"
                )
            if spec.index in seen:
                raise StfBuildError(f"module {module.name!r}: {kind} index {spec.index} twice")
            seen.add(spec.index)
            try:
                cls = spec.cls
            except TypeError as e:
                raise StfBuildError(f"module {module.name!r}: {e}") from None
            if signed and not hasattr(cls, "signer"):
                raise StfBuildError(
                    f"module {module.name!r}: {kind} {cls.__name__} has no `signer` property"
                )


def _fmt(r: range) -> str:
    return f"{r.start}..{r.stop - 1}"


def _decode(codec: Codec[T], data: bytes, what: str) -> T:
    try:
        return codec.decode(bytes(data))
    except PrimitivesError as e:
        raise OperationDecodeError(f"not a {what} of this STF: {e}") from None
