"""Trusted types of PROTOCOL.md: exact bytes, signatures, module extension, typed errors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tocw.primitives.errors import ScaleDecodeError
from tocw.primitives.keys import Keypair, KeyScheme, Sr25519Signature
from tocw.primitives.scale import U32, struct
from tocw.primitives.trusted import (
    ACCOUNT_ID,
    BASE_CODECS,
    DIRECT_REQUEST_STATUS_CODEC,
    REQUEST_CODEC,
    RPC_RETURN_VALUE_CODEC,
    BalanceSetBalance,
    BalanceShield,
    BalanceTransfer,
    BalanceUnshield,
    FreeBalance,
    GetOp,
    IndirectCall,
    NonceGetter,
    Noop,
    ParentchainId,
    PublicGetterOp,
    Request,
    ReservedBalance,
    RpcReturnValue,
    SomeValue,
    StatusOk,
    StatusTrustedOperation,
    TimestampSet,
    TrustedCallSigned,
    TrustedGetterOp,
    TrustedOperationStatus,
    call_signing_payload,
    check_call_signature,
    check_getter_signature,
    sign_call,
    sign_getter,
)
from tocw.primitives.types import AccountId, Balance, Moment, MrEnclave, Nonce, ShardId

ALICE = Keypair.from_uri("//Alice")
BOB = Keypair.from_uri("//Bob")
A = ALICE.account_id
B = BOB.account_id
MRENCLAVE = MrEnclave(bytes(range(32)))
SHARD = ShardId(bytes(range(32, 64)))


def test_trusted_call_bytes_match_protocol_layout() -> None:
    """balance_transfer is index 2 then from ‖ to ‖ u128 LE value, as Integritee."""
    call = BalanceTransfer(A, B, Balance(10**12))
    encoded = BASE_CODECS.call.encode(call)
    assert encoded == b"\x02" + A + B + (10**12).to_bytes(16, "little")
    assert BASE_CODECS.call.decode(encoded) == call


@pytest.mark.parametrize(
    ("call", "index"),
    [
        (Noop(A), 0),
        (BalanceSetBalance(A, B, Balance(1), Balance(2)), 1),
        (BalanceTransfer(A, B, Balance(3)), 2),
        (BalanceUnshield(A, B, Balance(4), SHARD), 3),
        (BalanceShield(A, B, Balance(5), ParentchainId.INTEGRITEE), 4),
        (TimestampSet(A, Moment(6), ParentchainId.TARGET_B), 5),
    ],
)
def test_trusted_call_variant_indices(call: object, index: int) -> None:
    """Each built-in call has its PROTOCOL.md index and round-trips."""
    encoded = BASE_CODECS.call.encode(call)
    assert encoded[0] == index
    assert BASE_CODECS.call.decode(encoded) == call


def test_signing_payload_is_call_nonce_mrenclave_shard() -> None:
    """The signed bytes are SCALE(call) ‖ nonce u32 LE ‖ mrenclave ‖ shard."""
    call = Noop(A)
    payload = call_signing_payload(BASE_CODECS, call, Nonce(7), MRENCLAVE, SHARD)
    assert payload == b"\x00" + A + b"\x07\x00\x00\x00" + MRENCLAVE + SHARD


def test_signed_call_verifies_only_for_its_context() -> None:
    """A signature holds for its mrenclave/shard/nonce and fails for any other."""
    signed = sign_call(
        BASE_CODECS, BalanceTransfer(A, B, Balance(1)), Nonce(0), MRENCLAVE, SHARD, ALICE
    )
    assert check_call_signature(BASE_CODECS, signed, MRENCLAVE, SHARD)
    assert not check_call_signature(BASE_CODECS, signed, MRENCLAVE, ShardId(bytes(32)))
    assert not check_call_signature(BASE_CODECS, signed, MrEnclave(bytes(32)), SHARD)
    bumped = TrustedCallSigned(signed.call, Nonce(1), signed.signature)
    assert not check_call_signature(BASE_CODECS, bumped, MRENCLAVE, SHARD)
    forged = sign_call(
        BASE_CODECS, BalanceTransfer(A, B, Balance(1)), Nonce(0), MRENCLAVE, SHARD, BOB
    )
    assert not check_call_signature(BASE_CODECS, forged, MRENCLAVE, SHARD)


def test_signed_call_ed25519_signer() -> None:
    """An ed25519 account signs with MultiSignature::Ed25519 and verifies."""
    ed = Keypair.from_uri("//Alice", KeyScheme.ED25519)
    signed = sign_call(BASE_CODECS, Noop(ed.account_id), Nonce(0), MRENCLAVE, SHARD, ed)
    assert BASE_CODECS.call_signed.encode(signed)[1 + 32 + 4] == 0  # Ed25519 variant
    assert check_call_signature(BASE_CODECS, signed, MRENCLAVE, SHARD)


def test_operation_roundtrip_indirect_call() -> None:
    """TrustedOperation::indirect_call(signed) is index 0 and round-trips."""
    signed = sign_call(BASE_CODECS, Noop(A), Nonce(0), MRENCLAVE, SHARD, ALICE)
    op = IndirectCall(signed)
    encoded = BASE_CODECS.operation.encode(op)
    assert encoded[0] == 0
    assert encoded[1:] == BASE_CODECS.call_signed.encode(signed)
    assert BASE_CODECS.operation.decode(encoded) == op


def test_getters_encode_and_verify() -> None:
    """Getter::trusted signs SCALE(getter); Getter::public some_value is two zero bytes."""
    assert BASE_CODECS.getter.encode(PublicGetterOp(SomeValue())) == b"\x00\x00"
    for getter in (FreeBalance(A), ReservedBalance(A), NonceGetter(A)):
        signed = sign_getter(BASE_CODECS, getter, ALICE)
        assert check_getter_signature(BASE_CODECS, signed)
        op = GetOp(TrustedGetterOp(signed))
        assert BASE_CODECS.operation.decode(BASE_CODECS.operation.encode(op)) == op
    wrong = sign_getter(BASE_CODECS, FreeBalance(A), BOB)
    assert not check_getter_signature(BASE_CODECS, wrong)


def test_request_and_rpc_return_value_layout() -> None:
    """Request = shard ‖ Vec<u8>; RpcReturnValue = Vec<u8> ‖ bool ‖ status."""
    assert REQUEST_CODEC.encode(Request(SHARD, b"\x01\x02")) == SHARD + b"\x08\x01\x02"
    ok = RpcReturnValue.ok(b"\x2a\x00\x00\x00")
    assert RPC_RETURN_VALUE_CODEC.encode(ok) == b"\x10\x2a\x00\x00\x00\x00\x00"
    err = RpcReturnValue.error("boom")
    assert RPC_RETURN_VALUE_CODEC.encode(err) == b"\x14\x10boom\x00\x02"
    assert (
        RPC_RETURN_VALUE_CODEC.decode(RPC_RETURN_VALUE_CODEC.encode(err)).error_message() == "boom"
    )
    assert ok.error_message() is None


def test_direct_request_status_trusted_operation_variants() -> None:
    """TrustedOperationStatus nests under index 1; InSidechainBlock carries a hash."""
    st_ = StatusTrustedOperation(TrustedOperationStatus.IN_SIDECHAIN_BLOCK, bytes(32))
    assert DIRECT_REQUEST_STATUS_CODEC.encode(st_) == b"\x01\x04" + bytes(32)
    assert DIRECT_REQUEST_STATUS_CODEC.encode(StatusOk()) == b"\x00"
    assert DIRECT_REQUEST_STATUS_CODEC.decode(b"\x01\x0a") == StatusTrustedOperation(
        TrustedOperationStatus.INVALID
    )
    with pytest.raises(ScaleDecodeError):
        DIRECT_REQUEST_STATUS_CODEC.decode(b"\x01\x0b")


def test_module_extension_adds_variants_and_rejects_clashes() -> None:
    """A module's call at index 50 decodes only with the extended codecs."""
    from dataclasses import dataclass

    @dataclass(frozen=True, slots=True)
    class Ping:
        who: AccountId
        n: int

        @property
        def signer(self) -> AccountId:
            return self.who

    ext = BASE_CODECS.extend(calls={50: struct(Ping, who=ACCOUNT_ID, n=U32)})
    signed = sign_call(ext, Ping(A, 5), Nonce(0), MRENCLAVE, SHARD, ALICE)
    data = ext.operation.encode(IndirectCall(signed))
    assert ext.operation.decode(data) == IndirectCall(signed)
    assert check_call_signature(ext, signed, MRENCLAVE, SHARD)
    with pytest.raises(ScaleDecodeError, match="unknown TrustedCall variant index 50"):
        BASE_CODECS.operation.decode(data)
    with pytest.raises(ValueError, match="already taken"):
        BASE_CODECS.extend(calls={2: struct(Ping, who=ACCOUNT_ID, n=U32)})


def test_parentchain_id_rejects_unknown_index() -> None:
    """An out-of-range ParentchainId is a decode error, not a ValueError leak."""
    data = bytearray(BASE_CODECS.call.encode(TimestampSet(A, Moment(1), ParentchainId.INTEGRITEE)))
    data[-1] = 9
    with pytest.raises(ScaleDecodeError):
        BASE_CODECS.call.decode(bytes(data))


accounts = st.binary(min_size=32, max_size=32).map(AccountId)
balances = st.integers(0, (1 << 128) - 1).map(Balance)
calls = st.one_of(
    st.builds(Noop, accounts),
    st.builds(BalanceSetBalance, accounts, accounts, balances, balances),
    st.builds(BalanceTransfer, accounts, accounts, balances),
    st.builds(
        BalanceUnshield,
        accounts,
        accounts,
        balances,
        st.binary(min_size=32, max_size=32).map(ShardId),
    ),
    st.builds(BalanceShield, accounts, accounts, balances, st.sampled_from(ParentchainId)),
    st.builds(
        TimestampSet,
        accounts,
        st.integers(0, (1 << 64) - 1).map(Moment),
        st.sampled_from(ParentchainId),
    ),
)


@given(calls, st.integers(0, (1 << 32) - 1), st.binary(min_size=64, max_size=64))
def test_operation_roundtrip_property(call: object, nonce: int, sig: bytes) -> None:
    """Every TrustedOperation built from any call, nonce and signature round-trips."""
    op = IndirectCall(TrustedCallSigned(call, Nonce(nonce), Sr25519Signature(sig)))
    assert BASE_CODECS.operation.decode(BASE_CODECS.operation.encode(op)) == op


@given(st.binary(max_size=200))
def test_operation_decode_fuzz_typed_errors(data: bytes) -> None:
    """Arbitrary bytes decode or raise ScaleDecodeError, nothing else."""
    with contextlib.suppress(ScaleDecodeError):
        BASE_CODECS.operation.decode(data)
