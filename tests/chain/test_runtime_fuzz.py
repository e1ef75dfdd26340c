"""Robustness: arbitrary well-typed calls and arbitrary bytes never crash the runtime.

Values are generated from each call's declared argument types (the same TypeInfo the metadata
is built from), so every handler sees every shape its arguments can take, signed and as Root.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tocw.chain.errors import InvalidTransactionError
from tocw.chain.pallets.enclave_bridge import REQUEST_T
from tocw.chain.pallets.framework import CallDef
from tocw.chain.pallets.scaleinfo import (
    ArrayOf,
    CompactOf,
    Composite,
    OptionOf,
    Primitive,
    SequenceOf,
    TupleOf,
    TypeInfo,
    VariantType,
)
from tocw.chain.pallets.substrate_types import MULTI_SIGNATURE_T, RUNTIME_CALL
from tocw.chain.runtime import PALLETS, LocalChain, Runtime
from tocw.primitives.keys import Ed25519Signature, Keypair, KeyScheme, Sr25519Signature
from tocw.primitives.trusted import Request
from tocw.primitives.types import ShardId

RUNTIME = Runtime()
ALICE = Keypair.from_uri("//Alice", KeyScheme.SR25519)
_BITS = {"u8": 8, "u16": 16, "u32": 32, "u64": 64, "u128": 128}
CALLS: list[tuple[str, CallDef]] = [(p.name, c) for p in PALLETS for c in p.calls]
FUZZ_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def values(ty: TypeInfo, depth: int = 0) -> st.SearchStrategy[Any]:
    """A strategy for Python values of a declared type (as its codec takes them)."""
    if ty is RUNTIME_CALL:
        return calls(depth + 1)
    if ty is REQUEST_T:
        return st.builds(Request, st.binary(min_size=32, max_size=32).map(ShardId), st.binary())
    if ty is MULTI_SIGNATURE_T:
        return st.one_of(
            st.binary(min_size=64, max_size=64).map(Ed25519Signature),
            st.binary(min_size=64, max_size=64).map(Sr25519Signature),
        )
    if isinstance(ty, Primitive):
        if ty.name == "bool":
            return st.booleans()
        if ty.name == "str":
            return st.text(max_size=20)
        return st.integers(0, (1 << _BITS[ty.name]) - 1)
    if isinstance(ty, CompactOf):
        if isinstance(ty.inner, TupleOf):
            return st.just(())
        return st.one_of(
            st.integers(0, 10**13),
            st.integers(0, (1 << _BITS[ty.inner.name]) - 1),  # type: ignore[attr-defined]
        )
    if isinstance(ty, ArrayOf):
        return st.binary(min_size=ty.length, max_size=ty.length)
    if isinstance(ty, SequenceOf):
        if isinstance(ty.inner, Primitive) and ty.inner.name == "u8":
            return st.binary(max_size=300)
        return st.lists(values(ty.inner, depth), max_size=7)
    if isinstance(ty, TupleOf):
        return st.tuples(*(values(i, depth) for i in ty.items))
    if isinstance(ty, OptionOf):
        return st.none() | values(ty.inner, depth)
    if isinstance(ty, Composite):
        fields = [values(f.ty, depth) for f in ty.fields]
        if ty.cls is not None:
            return st.builds(ty.cls, *fields)
        if len(fields) == 1:
            return fields[0]
        return st.tuples(*fields)
    if isinstance(ty, VariantType):
        if ty.int_enum is not None:
            return st.sampled_from(list(ty.int_enum))
        options = []
        for v in ty.variants:
            assert v.cls is not None, f"{ty!r} needs a value strategy"
            options.append(st.builds(v.cls, *(values(f.ty, depth) for f in v.fields)))
        return st.one_of(options)
    raise AssertionError(f"no strategy for {ty!r}")


def calls(depth: int = 0) -> st.SearchStrategy[Any]:
    """A decoded Call of any pallet, arguments drawn from their types (nesting bounded)."""
    pool = CALLS if depth < 2 else [(p, c) for p, c in CALLS if c.name not in _NESTING]

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        pallet, call = draw(st.sampled_from(pool))
        args = [draw(values(f.ty, depth)) for f in call.fields]
        return RUNTIME.decode_call(RUNTIME.encode_call(pallet, call.name, *args))

    return build()


_NESTING = {"sudo", "sudo_unchecked_weight", "sudo_as"}


@FUZZ_SETTINGS
@given(call=calls(), as_root=st.booleans())
def test_fuzz_any_well_typed_call_succeeds_or_fails_cleanly(call: Any, as_root: bool) -> None:
    """Signed by //Alice, directly or through sudo: always included, always ending in
    ExtrinsicSuccess or ExtrinsicFailed, never an exception out of the runtime."""
    chain = LocalChain(RUNTIME)
    data = call.encoded if not as_root else RUNTIME.encode_call("Sudo", "sudo", call)
    xt = chain.sign(ALICE, data)
    try:
        chain.validate(xt)
    except InvalidTransactionError as e:
        assert e.reason in ("MandatoryValidation", "ExhaustsResources", "Payment"), e
        return
    result = chain.produce(xt)
    assert result.extrinsics[1:] == [xt]
    last = result.extrinsic_events(1)[-1]
    assert str(last) in ("System.ExtrinsicSuccess", "System.ExtrinsicFailed")


@FUZZ_SETTINGS
@given(head=st.sampled_from(CALLS), tail=st.binary(max_size=120))
def test_fuzz_random_call_bytes_are_decoded_or_refused(
    head: tuple[str, CallDef], tail: bytes
) -> None:
    """Random argument bytes behind a valid call index: BadFormat at validation, or a call
    that executes cleanly; a block never crashes on them."""
    pallet, call = head
    index = [p.name for p in PALLETS].index(pallet)
    chain = LocalChain(RUNTIME)
    xt = chain.sign(ALICE, bytes((index, call.index)) + tail)
    try:
        chain.validate(xt)
    except InvalidTransactionError as e:
        assert e.reason in ("BadFormat", "MandatoryValidation", "ExhaustsResources", "Payment")
    result = chain.produce(xt)
    assert len(result.extrinsics) + len(result.dropped) + len(result.deferred) == 2


@FUZZ_SETTINGS
@given(raw=st.binary(max_size=200))
def test_fuzz_random_extrinsic_bytes_are_refused(raw: bytes) -> None:
    """Arbitrary bytes as an extrinsic: an InvalidTransactionError, nothing else."""
    chain = LocalChain(RUNTIME)
    with contextlib.suppress(InvalidTransactionError):
        chain.validate(raw)
    result = chain.produce(raw)
    assert result.extrinsics[1:] == [] or result.extrinsics[1:] == [raw]
