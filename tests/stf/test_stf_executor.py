"""tocw.stf.executor: building an STF from modules, decoding, the execution rules, Merkle leaves."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from tocw.primitives.hashing import blake2_256, trusted_calls_merkle_root
from tocw.primitives.keys import Keypair, KeyScheme, Sr25519Signature
from tocw.primitives.scale import U32, struct
from tocw.primitives.trusted import (
    ACCOUNT_ID,
    BALANCE,
    BASE_CODECS,
    BalanceSetBalance,
    BalanceShield,
    BalanceTransfer,
    BalanceUnshield,
    FreeBalance,
    GetOp,
    IndirectCall,
    Noop,
    ParentchainId,
    PublicGetterOp,
    SomeValue,
    TimestampSet,
    TrustedGetterOp,
    sign_call,
    sign_getter,
)
from tocw.primitives.types import AccountId, Balance, BlockNumber, Moment, MrEnclave, Nonce, ShardId
from tocw.stf.errors import (
    BadOriginError,
    InsufficientBalanceError,
    InvalidEnvError,
    NonceMismatchError,
    OperationDecodeError,
    StfBuildError,
    UnsupportedOperationError,
)
from tocw.stf.executor import Stf, trusted_calls_root
from tocw.stf.modules import auction, balances
from tocw.stf.modules.auction import AuctionBid, AuctionCreate
from tocw.stf.registry import build_stf
from tocw.stf.state import State
from tocw.stf.system import ACCOUNT_NONCE, account_nonce
from tocw.stf.types import CallContext, CallEnv, CallSpec, Effect, GetterSpec, Origin, StfModule

ALICE = Keypair.from_uri("//Alice")
BOB = Keypair.from_uri("//Bob")
ENCLAVE = Keypair.from_uri("//Enclave", KeyScheme.ED25519)
A, B, ENC = ALICE.account_id, BOB.account_id, ENCLAVE.account_id
SHARD = ShardId(b"\x5a" * 32)
MRENCLAVE = MrEnclave(b"\xa5" * 32)
ENV = CallEnv(BlockNumber(1), Moment(1_000), SHARD, MRENCLAVE, ENC, A)

BALANCES_ONLY = build_stf(["balances"])
FULL = build_stf(["balances", "auction"])


def signed(stf: Stf, call: Any, key: Keypair, nonce: int = 0) -> Any:
    return sign_call(stf.codecs, call, Nonce(nonce), MRENCLAVE, SHARD, key)


# -- a tiny module for build tests --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping:
    who: AccountId

    @property
    def signer(self) -> AccountId:
        return self.who


@dataclass(frozen=True, slots=True)
class Unsigned:
    value: int


@dataclass(frozen=True, slots=True)
class Boom:
    who: AccountId

    @property
    def signer(self) -> AccountId:
        return self.who


def apply_ping(state: State, call: Ping, ctx: CallContext) -> Sequence[Effect]:
    state.set(b"ping", call.who)
    return ()


def apply_boom(state: State, call: Boom, ctx: CallContext) -> Sequence[Effect]:
    state.set(b"boom", b"half-written")
    raise KeyError("a module bug")


PING = CallSpec(60, struct(Ping, who=ACCOUNT_ID), apply_ping)


def module(name: str = "ping", **kw: Any) -> StfModule:
    fields: dict[str, Any] = {
        "name": name,
        "indices": range(60, 62),
        "calls": (PING,),
        "namespaces": ("Ping",),
    }
    fields.update(kw)
    return StfModule(**fields)


def test_executor_build_accepts_disjoint_modules() -> None:
    """A third module with its own range and namespace joins balances and auction."""
    stf = Stf.from_modules([balances.MODULE, auction.MODULE, module()])
    assert stf.module_names == ("balances", "auction", "ping")
    assert stf.codecs.call.index_of(Ping(A)) == 60


@pytest.mark.parametrize(
    ("modules", "match"),
    [
        ([], "at least one"),
        ([module(), module()], "twice"),
        ([module(), module("other", namespaces=("Other",))], "overlap"),
        ([module(indices=range(61, 62))], "outside"),
        ([module(indices=range(250, 260))], "bad index range"),
        ([module(indices=range(60, 70, 2))], "bad index range"),
        ([module(calls=(PING, dataclasses.replace(PING, index=61)))], "registered twice"),
        ([module(calls=(PING, CallSpec(60, struct(Boom, who=ACCOUNT_ID), apply_boom)))], "twice"),
        ([module(namespaces=("System",))], "reserved"),
        ([balances.MODULE, module(namespaces=("Balances",))], "both claim"),
        ([module(requires=("balances",))], "requires"),
        ([auction.MODULE], "requires"),
        ([module(calls=(CallSpec(60, struct(Unsigned, value=U32), apply_ping),))], "signer"),
        (
            [
                module(
                    trusted_getters=(
                        GetterSpec(60, struct(Unsigned, value=U32), lambda s, g: None),
                    )
                )
            ],
            "signer",
        ),
    ],
)
def test_executor_build_rejects_bad_module_sets(modules: list[StfModule], match: str) -> None:
    """Clashing ranges, indices, namespaces, classes and missing pieces fail at build time."""
    with pytest.raises(StfBuildError, match=match):
        Stf.from_modules(modules)


def test_executor_balances_codecs_match_protocol_base() -> None:
    """A balances-only STF encodes every operation exactly as PROTOCOL.md's base codecs."""
    op = IndirectCall(signed(BALANCES_ONLY, BalanceTransfer(A, B, Balance(5)), ALICE))
    assert BALANCES_ONLY.codecs.operation.encode(op) == BASE_CODECS.operation.encode(op)
    getter = GetOp(TrustedGetterOp(sign_getter(BASE_CODECS, FreeBalance(A), ALICE)))
    assert BALANCES_ONLY.codecs.operation.encode(getter) == BASE_CODECS.operation.encode(getter)


def test_executor_auction_call_wire_format() -> None:
    """AuctionCreate is TrustedCall index 50: seller, Vec<u8> item, u128 reserve, u64 end."""
    call = AuctionCreate(A, b"lamp", Balance(10), Moment(2))
    assert FULL.codecs.call.encode(call) == (
        b"\x32" + A + b"\x10lamp" + (10).to_bytes(16, "little") + (2).to_bytes(8, "little")
    )


def test_executor_decode_operation_roundtrip() -> None:
    """decode_operation inverts the operation codec for calls and getters."""
    op = IndirectCall(signed(FULL, AuctionBid(B, 3, Balance(7)), BOB))
    assert FULL.decode_operation(FULL.codecs.operation.encode(op)) == op
    get = GetOp(PublicGetterOp(SomeValue()))
    assert FULL.decode_operation(FULL.codecs.operation.encode(get)) == get


def test_executor_decode_rejects_garbage_and_disabled_modules() -> None:
    """Bytes that are not an operation of this STF (incl. a disabled module's) are typed errors."""
    auction_op = FULL.codecs.operation.encode(
        IndirectCall(signed(FULL, AuctionBid(B, 3, Balance(7)), BOB))
    )
    with pytest.raises(OperationDecodeError, match="TrustedCall variant index 51"):
        BALANCES_ONLY.decode_operation(auction_op)
    for bad in (b"", b"\x07", auction_op[:-1], auction_op + b"\x00"):
        with pytest.raises(OperationDecodeError):
            FULL.decode_operation(bad)
    with pytest.raises(OperationDecodeError):
        FULL.decode_call_signed(b"\x00" * 10)
    with pytest.raises(OperationDecodeError):
        FULL.decode_getter(b"\x02")


def test_executor_unsupported_call_and_getter_raise() -> None:
    """Values of a module the STF lacks are API misuse: UnsupportedOperationError."""
    state = State()
    bid = signed(FULL, AuctionBid(B, 0, Balance(1)), BOB)
    with pytest.raises(UnsupportedOperationError):
        BALANCES_ONLY.execute_call(state, bid, ENV)
    with pytest.raises(UnsupportedOperationError):
        BALANCES_ONLY.execute_getter(state, PublicGetterOp(auction.AuctionCount()))
    with pytest.raises(UnsupportedOperationError):
        BALANCES_ONLY.execute_getter(state, "not a getter")  # type: ignore[arg-type]
    assert state.items() == []


def test_executor_enclave_call_refuses_client_calls() -> None:
    """execute_enclave_call only takes enclave-only calls; a transfer is refused unexecuted."""
    state = State()
    with pytest.raises(UnsupportedOperationError, match="not an enclave call"):
        FULL.execute_enclave_call(state, BalanceTransfer(A, B, Balance(0)), ENV)
    assert state.items() == []


def test_executor_nonce_bumped_by_failed_call_then_next_nonce_works() -> None:
    """A failing call consumes its nonce; replaying it is rejected, the next nonce is accepted."""
    state = State()
    failing = signed(FULL, BalanceTransfer(B, A, Balance(1)), BOB, 0)
    first = FULL.execute_call(state, failing, ENV)
    assert first.accepted and isinstance(first.error, InsufficientBalanceError)
    replay = FULL.execute_call(state, failing, ENV)
    assert not replay.accepted and isinstance(replay.error, NonceMismatchError)
    assert (replay.error.expected, replay.error.got) == (1, 0)
    nxt = FULL.execute_call(state, signed(FULL, Noop(B), BOB, 1), ENV)
    assert nxt.success and account_nonce(state, B) == 2


def test_executor_enclave_origin_skips_signature_only() -> None:
    """Origin.ENCLAVE skips the signature check but not the nonce, and admits enclave calls."""
    state = State()
    call = BalanceShield(ENC, B, Balance(9), ParentchainId.INTEGRITEE)
    forged = dataclasses.replace(signed(FULL, call, ENCLAVE), signature=Sr25519Signature(bytes(64)))
    outcome = FULL.execute_call(state, forged, ENV, Origin.ENCLAVE)
    assert outcome.success and outcome.call_hash == FULL.call_hash(forged)
    assert balances.account_data(state, B).free == 9 and account_nonce(state, ENC) == 1
    again = FULL.execute_call(state, forged, ENV, Origin.ENCLAVE)
    assert isinstance(again.error, NonceMismatchError)
    as_client = FULL.execute_call(State(), forged, ENV)
    assert not as_client.accepted


def test_executor_module_bug_propagates_and_rolls_back() -> None:
    """A non-DispatchError from apply is a bug: it propagates, the call's writes are undone."""
    stf = Stf.from_modules(
        [module(calls=(CallSpec(60, struct(Boom, who=ACCOUNT_ID), apply_boom),))]
    )
    state = State()
    with pytest.raises(KeyError):
        stf.execute_call(state, signed(stf, Boom(B), BOB), ENV)
    assert state.get(b"boom") is None and state.depth == 0


def test_executor_stf_without_balances_runs_its_module() -> None:
    """An STF of a single custom module keeps nonces in System and applies its calls."""
    stf = Stf.from_modules([module()])
    state = State()
    outcome = stf.execute_call(state, signed(stf, Ping(B), BOB), ENV)
    assert outcome.success and state.get(b"ping") == B and account_nonce(state, B) == 1
    with pytest.raises(OperationDecodeError):
        stf.decode_getter(b"\x00\x00")  # no public getters at all


def test_executor_trusted_calls_root_counts_accepted_client_calls() -> None:
    """Leaves are blake2_256(SCALE(TrustedCallSigned)) of accepted calls (failed included),
    not rejected ones and not enclave calls; equal to the primitives helper."""
    state = State()
    ok = signed(FULL, BalanceSetBalance(A, B, Balance(5), Balance(0)), ALICE, 0)
    failed = signed(FULL, BalanceTransfer(A, B, Balance(1)), ALICE, 1)
    rejected = signed(FULL, Noop(B), BOB, 7)
    outcomes = [
        FULL.execute_call(state, ok, ENV),
        FULL.execute_enclave_call(
            state, TimestampSet(ENC, Moment(5), ParentchainId.INTEGRITEE), ENV
        ),
        FULL.execute_call(state, failed, ENV),
        FULL.execute_call(state, rejected, ENV),
    ]
    assert [o.accepted for o in outcomes] == [True, True, True, False]
    assert outcomes[0].call_hash == blake2_256(FULL.codecs.call_signed.encode(ok))
    expected = trusted_calls_merkle_root([FULL.codecs.call_signed.encode(s) for s in (ok, failed)])
    assert trusted_calls_root(outcomes) == expected
    assert trusted_calls_root([]) == bytes(32)


def test_executor_unshield_effect_call_hash_is_leaf() -> None:
    """The unshield effect carries blake2_256(SCALE(TrustedCallSigned)), as PROTOCOL.md."""
    state = State()
    balances.mint(state, B, Balance(10))
    call = signed(FULL, BalanceUnshield(B, A, Balance(4), SHARD), BOB)
    outcome = FULL.execute_call(state, call, ENV)
    assert outcome.effects[0].call_hash == blake2_256(FULL.codecs.call_signed.encode(call))


def test_executor_getter_reads_uncommitted_view() -> None:
    """Getters answer from what the State shows, including an open transaction."""
    state = State()
    state.begin()
    balances.mint(state, A, Balance(3))
    answer = FULL.execute_getter(
        state, TrustedGetterOp(sign_getter(FULL.codecs, FreeBalance(A), ALICE))
    )
    assert answer == BALANCE.encode(Balance(3))


@pytest.mark.parametrize(
    "field_value",
    [
        {"shard": b"\x00" * 31},
        {"mrenclave": "x" * 32},
        {"block_number": -1},
        {"block_number": 1 << 32},
        {"timestamp": 1 << 64},
        {"root_account": b""},
    ],
)
def test_executor_call_env_validates_fields(field_value: dict[str, Any]) -> None:
    """A malformed CallEnv is an InvalidEnvError at construction, not a failure mid-block."""
    with pytest.raises(InvalidEnvError):
        dataclasses.replace(ENV, **field_value)


def test_executor_bad_origin_for_client_enclave_call_keeps_other_state() -> None:
    """A client's timestamp_set fails with BadOriginError and touches nothing but its nonce."""
    state = State()
    call = signed(FULL, TimestampSet(B, Moment(5), ParentchainId.INTEGRITEE), BOB)
    outcome = FULL.execute_call(state, call, ENV)
    assert isinstance(outcome.error, BadOriginError)
    assert balances.parentchain_now(state, ParentchainId.INTEGRITEE) is None
    assert state.changes() == {ACCOUNT_NONCE.key(B): U32.encode(1)}
