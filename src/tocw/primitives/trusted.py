"""The trusted types of PROTOCOL.md, byte for byte as Integritee (sdk v0.13).

Owns the Python shapes and SCALE codecs of what clients send to workers (TrustedCall,
TrustedCallSigned, TrustedOperation, Getter, TrustedGetterSigned, Request) and what workers
answer (RpcReturnValue, DirectRequestStatus, TrustedOperationStatus).

TrustedCall and the getter enums are open: STF modules add variants from index 50 on. The
built-in variants live here; `TrustedCodecs.extend(...)` gives the codecs of a worker built with
a chosen set of modules (the STF registry does that), so a call of a module that is not enabled
fails to decode with a clear error instead of being misread.

Every call variant names the account that must have signed it (`signer`), which is what the
signature check and the nonce apply to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol, TypeAlias

from tocw.primitives.errors import ScaleDecodeError
from tocw.primitives.keys import MULTI_SIGNATURE_CODEC, MultiSignature, verify_multi
from tocw.primitives.scale import (
    H256,
    U32,
    U64,
    U128,
    Bool,
    Bytes,
    Codec,
    Enum,
    Mapped,
    Reader,
    Str,
    Unit,
    struct,
)
from tocw.primitives.types import AccountId, Balance, Moment, MrEnclave, Nonce, ShardId

# -- field codecs --------------------------------------------------------------------------------

ACCOUNT_ID: Codec[AccountId] = Mapped(H256, AccountId, bytes)
SHARD_ID: Codec[ShardId] = Mapped(H256, ShardId, bytes)
BALANCE: Codec[Balance] = Mapped(U128, Balance, int)
NONCE: Codec[Nonce] = Mapped(U32, Nonce, int)
MOMENT: Codec[Moment] = Mapped(U64, Moment, int)


class ParentchainId(IntEnum):
    """Which parentchain an enclave-originated call came from (PROTOCOL.md)."""

    INTEGRITEE = 0
    TARGET_A = 1
    TARGET_B = 2


class _ParentchainIdCodec(Codec[ParentchainId]):
    def encode_into(self, value: ParentchainId, out: bytearray) -> None:
        out.append(int(ParentchainId(value)))

    def read(self, r: Reader) -> ParentchainId:
        b = r.read_byte()
        try:
            return ParentchainId(b)
        except ValueError:
            raise ScaleDecodeError(f"unknown ParentchainId index {b}") from None


PARENTCHAIN_ID = _ParentchainIdCodec()


class SignedBy(Protocol):
    """What every TrustedCall / TrustedGetter variant provides: the account that must sign."""

    @property
    def signer(self) -> AccountId: ...


class Signer(Protocol):
    """Anything that can produce a MultiSignature (tocw.primitives.keys.Keypair does)."""

    def multi_sign(self, message: bytes) -> MultiSignature: ...


# -- TrustedCall: built-in variants 0..5 ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Noop:
    who: AccountId

    @property
    def signer(self) -> AccountId:
        return self.who


@dataclass(frozen=True, slots=True)
class BalanceSetBalance:
    root: AccountId
    who: AccountId
    free: Balance
    reserved: Balance

    @property
    def signer(self) -> AccountId:
        return self.root


@dataclass(frozen=True, slots=True)
class BalanceTransfer:
    from_: AccountId
    to: AccountId
    value: Balance

    @property
    def signer(self) -> AccountId:
        return self.from_


@dataclass(frozen=True, slots=True)
class BalanceUnshield:
    from_: AccountId
    beneficiary: AccountId
    value: Balance
    shard: ShardId

    @property
    def signer(self) -> AccountId:
        return self.from_


@dataclass(frozen=True, slots=True)
class BalanceShield:
    """Enclave-originated only: created from a parentchain ShieldFunds event."""

    enclave_account: AccountId
    who: AccountId
    value: Balance
    parentchain: ParentchainId

    @property
    def signer(self) -> AccountId:
        return self.enclave_account


@dataclass(frozen=True, slots=True)
class TimestampSet:
    """Enclave-originated only: created from the parentchain's Timestamp.set."""

    enclave_account: AccountId
    now: Moment
    parentchain: ParentchainId

    @property
    def signer(self) -> AccountId:
        return self.enclave_account


# Any variant of TrustedCall, built-in or from a module (all are SignedBy).
TrustedCall: TypeAlias = Any

BASE_CALL_VARIANTS: dict[int, Codec[Any]] = {
    0: struct(Noop, who=ACCOUNT_ID),
    1: struct(BalanceSetBalance, root=ACCOUNT_ID, who=ACCOUNT_ID, free=BALANCE, reserved=BALANCE),
    2: struct(BalanceTransfer, from_=ACCOUNT_ID, to=ACCOUNT_ID, value=BALANCE),
    3: struct(
        BalanceUnshield, from_=ACCOUNT_ID, beneficiary=ACCOUNT_ID, value=BALANCE, shard=SHARD_ID
    ),
    4: struct(
        BalanceShield,
        enclave_account=ACCOUNT_ID,
        who=ACCOUNT_ID,
        value=BALANCE,
        parentchain=PARENTCHAIN_ID,
    ),
    5: struct(TimestampSet, enclave_account=ACCOUNT_ID, now=MOMENT, parentchain=PARENTCHAIN_ID),
}

FIRST_MODULE_CALL_INDEX = 50


# -- Getters -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SomeValue:
    """PublicGetter::some_value -> u32 (42), as Integritee."""


@dataclass(frozen=True, slots=True)
class FreeBalance:
    who: AccountId

    @property
    def signer(self) -> AccountId:
        return self.who


@dataclass(frozen=True, slots=True)
class ReservedBalance:
    who: AccountId

    @property
    def signer(self) -> AccountId:
        return self.who


@dataclass(frozen=True, slots=True)
class NonceGetter:
    who: AccountId

    @property
    def signer(self) -> AccountId:
        return self.who


TrustedGetter: TypeAlias = Any
PublicGetter: TypeAlias = Any

BASE_PUBLIC_GETTER_VARIANTS: dict[int, Codec[Any]] = {0: Unit(SomeValue)}
BASE_TRUSTED_GETTER_VARIANTS: dict[int, Codec[Any]] = {
    0: struct(FreeBalance, who=ACCOUNT_ID),
    1: struct(ReservedBalance, who=ACCOUNT_ID),
    2: struct(NonceGetter, who=ACCOUNT_ID),
}


# -- Signed wrappers and operations --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustedCallSigned:
    call: TrustedCall
    nonce: Nonce
    signature: MultiSignature


@dataclass(frozen=True, slots=True)
class TrustedGetterSigned:
    getter: TrustedGetter
    signature: MultiSignature


@dataclass(frozen=True, slots=True)
class IndirectCall:
    """TrustedOperation::indirect_call: what clients encrypt into EnclaveBridge.invoke."""

    signed: TrustedCallSigned


@dataclass(frozen=True, slots=True)
class DirectCall:
    signed: TrustedCallSigned


@dataclass(frozen=True, slots=True)
class PublicGetterOp:
    """Getter::public."""

    getter: PublicGetter


@dataclass(frozen=True, slots=True)
class TrustedGetterOp:
    """Getter::trusted."""

    signed: TrustedGetterSigned


Getter: TypeAlias = PublicGetterOp | TrustedGetterOp


@dataclass(frozen=True, slots=True)
class GetOp:
    """TrustedOperation::get."""

    getter: Getter


TrustedOperation: TypeAlias = IndirectCall | DirectCall | GetOp


@dataclass(frozen=True, slots=True)
class Request:
    """The envelope of EnclaveBridge.invoke and of state_executeGetter's parameter."""

    shard: ShardId
    cyphertext: bytes


REQUEST_CODEC = struct(Request, shard=SHARD_ID, cyphertext=Bytes)


# -- RPC return values ---------------------------------------------------------------------------


class TrustedOperationStatus(IntEnum):
    """As Integritee; InSidechainBlock carries a hash and is represented by InSidechainBlock."""

    SUBMITTED = 0
    FUTURE = 1
    READY = 2
    BROADCAST = 3
    IN_SIDECHAIN_BLOCK = 4
    RETRACTED = 5
    FINALITY_TIMEOUT = 6
    FINALIZED = 7
    USURPED = 8
    DROPPED = 9
    INVALID = 10


@dataclass(frozen=True, slots=True)
class StatusOk:
    """DirectRequestStatus::Ok."""


@dataclass(frozen=True, slots=True)
class StatusError:
    """DirectRequestStatus::Error; the RpcReturnValue's value is SCALE(String) of the message."""


@dataclass(frozen=True, slots=True)
class StatusTrustedOperation:
    """DirectRequestStatus::TrustedOperationStatus(status); block_hash only for InSidechainBlock."""

    status: TrustedOperationStatus
    block_hash: bytes | None = None


class _TrustedOperationStatusCodec(Codec[StatusTrustedOperation]):
    cls = StatusTrustedOperation

    def encode_into(self, value: StatusTrustedOperation, out: bytearray) -> None:
        status = TrustedOperationStatus(value.status)
        out.append(int(status))
        if status is TrustedOperationStatus.IN_SIDECHAIN_BLOCK:
            H256.encode_into(value.block_hash or b"", out)

    def read(self, r: Reader) -> StatusTrustedOperation:
        b = r.read_byte()
        try:
            status = TrustedOperationStatus(b)
        except ValueError:
            raise ScaleDecodeError(f"unknown TrustedOperationStatus index {b}") from None
        block_hash = H256.read(r) if status is TrustedOperationStatus.IN_SIDECHAIN_BLOCK else None
        return StatusTrustedOperation(status, block_hash)


DirectRequestStatus: TypeAlias = StatusOk | StatusTrustedOperation | StatusError

DIRECT_REQUEST_STATUS_CODEC: Enum[DirectRequestStatus] = Enum(
    "DirectRequestStatus",
    {0: Unit(StatusOk), 1: _TrustedOperationStatusCodec(), 2: Unit(StatusError)},
)


@dataclass(frozen=True, slots=True)
class RpcReturnValue:
    value: bytes
    do_watch: bool
    status: DirectRequestStatus

    @staticmethod
    def ok(value: bytes) -> RpcReturnValue:
        return RpcReturnValue(value, False, StatusOk())

    @staticmethod
    def error(message: str) -> RpcReturnValue:
        return RpcReturnValue(Str.encode(message), False, StatusError())

    def error_message(self) -> str | None:
        """The message of an Error status, None for success."""
        if not isinstance(self.status, StatusError):
            return None
        try:
            return Str.decode(self.value)
        except ScaleDecodeError:
            return self.value.decode("utf-8", "replace")


RPC_RETURN_VALUE_CODEC = struct(
    RpcReturnValue, value=Bytes, do_watch=Bool, status=DIRECT_REQUEST_STATUS_CODEC
)


# -- The codec bundle ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustedCodecs:
    """The codecs of every open enum, for one chosen set of STF modules."""

    call: Enum[TrustedCall]
    public_getter: Enum[PublicGetter]
    trusted_getter: Enum[TrustedGetter]
    call_signed: Codec[TrustedCallSigned]
    getter_signed: Codec[TrustedGetterSigned]
    getter: Enum[Getter]
    operation: Enum[TrustedOperation]

    @staticmethod
    def build(
        call: Enum[TrustedCall], public_getter: Enum[PublicGetter], trusted_getter: Enum[Any]
    ) -> TrustedCodecs:
        call_signed = struct(
            TrustedCallSigned, call=call, nonce=NONCE, signature=MULTI_SIGNATURE_CODEC
        )
        getter_signed = struct(
            TrustedGetterSigned, getter=trusted_getter, signature=MULTI_SIGNATURE_CODEC
        )
        getter: Enum[Getter] = Enum(
            "Getter",
            {
                0: struct(PublicGetterOp, getter=public_getter),
                1: struct(TrustedGetterOp, signed=getter_signed),
            },
        )
        operation: Enum[TrustedOperation] = Enum(
            "TrustedOperation",
            {
                0: struct(IndirectCall, signed=call_signed),
                1: struct(DirectCall, signed=call_signed),
                2: struct(GetOp, getter=getter),
            },
        )
        return TrustedCodecs(
            call, public_getter, trusted_getter, call_signed, getter_signed, getter, operation
        )

    def extend(
        self,
        calls: Mapping[int, Codec[Any]] | None = None,
        public_getters: Mapping[int, Codec[Any]] | None = None,
        trusted_getters: Mapping[int, Codec[Any]] | None = None,
    ) -> TrustedCodecs:
        """Codecs with more variants (an STF module's); clashing indices raise ValueError."""
        return TrustedCodecs.build(
            self.call.extend(calls or {}),
            self.public_getter.extend(public_getters or {}),
            self.trusted_getter.extend(trusted_getters or {}),
        )


BASE_CODECS = TrustedCodecs.build(
    Enum("TrustedCall", BASE_CALL_VARIANTS),
    Enum("PublicGetter", BASE_PUBLIC_GETTER_VARIANTS),
    Enum("TrustedGetter", BASE_TRUSTED_GETTER_VARIANTS),
)


# -- Signing -------------------------------------------------------------------------------------


def call_signing_payload(
    codecs: TrustedCodecs, call: TrustedCall, nonce: Nonce, mrenclave: MrEnclave, shard: ShardId
) -> bytes:
    """SCALE(call) ‖ nonce (u32 LE) ‖ mrenclave ‖ shard: what a TrustedCallSigned signs."""
    if len(mrenclave) != 32 or len(shard) != 32:
        raise ValueError("mrenclave and shard must be 32 bytes")
    return codecs.call.encode(call) + U32.encode(nonce) + mrenclave + shard


def sign_call(
    codecs: TrustedCodecs,
    call: TrustedCall,
    nonce: Nonce,
    mrenclave: MrEnclave,
    shard: ShardId,
    signer: Signer,
) -> TrustedCallSigned:
    payload = call_signing_payload(codecs, call, nonce, mrenclave, shard)
    return TrustedCallSigned(call, nonce, signer.multi_sign(payload))


def check_call_signature(
    codecs: TrustedCodecs, signed: TrustedCallSigned, mrenclave: MrEnclave, shard: ShardId
) -> bool:
    """True if the signature verifies for the call's signer under this mrenclave and shard."""
    payload = call_signing_payload(codecs, signed.call, signed.nonce, mrenclave, shard)
    signer: AccountId = signed.call.signer
    return verify_multi(signed.signature, payload, signer)


def sign_getter(
    codecs: TrustedCodecs, getter: TrustedGetter, signer: Signer
) -> TrustedGetterSigned:
    return TrustedGetterSigned(getter, signer.multi_sign(codecs.trusted_getter.encode(getter)))


def check_getter_signature(codecs: TrustedCodecs, signed: TrustedGetterSigned) -> bool:
    signer: AccountId = signed.getter.signer
    return verify_multi(signed.signature, codecs.trusted_getter.encode(signed.getter), signer)
