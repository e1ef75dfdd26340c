"""The executive: transaction validity, block execution and the runtime APIs."""

from __future__ import annotations

import pytest

from tocw.chain.errors import (
    BlockExecutionError,
    InvalidTransactionError,
    RuntimeApiError,
    UnknownRuntimeApiError,
)
from tocw.chain.extrinsic import decode_extrinsic
from tocw.chain.genesis import GRANDPA_AUTHORITIES_KEY
from tocw.chain.pallets import balances, system, timestamp
from tocw.chain.pallets.substrate_types import (
    RUNTIME_DISPATCH_INFO_T,
    Address32,
    AddressId,
    DispatchClass,
)
from tocw.chain.runtime import ChainContext, DictStorage, LocalChain, Runtime, RuntimeConfig
from tocw.primitives.extrinsic import build_signed_extrinsic, build_unsigned_extrinsic
from tocw.primitives.keys import Keypair, KeyScheme
from tocw.primitives.metadata import Era
from tocw.primitives.scale import U32, U64, Bytes, Option, Vec, compact_bytes

ALICE = Keypair.from_uri("//Alice", KeyScheme.SR25519)
BOB = Keypair.from_uri("//Bob", KeyScheme.SR25519)
CHARLIE = Keypair.from_uri("//Charlie", KeyScheme.SR25519)
ZOE = Keypair.from_uri("//Zoe", KeyScheme.SR25519)  # not endowed
ED = RuntimeConfig().existential_deposit
T0 = 1_700_000_000_000
RUNTIME = Runtime()  # stateless: one for all tests, so the metadata is built once


def chain(config: RuntimeConfig | None = None) -> LocalChain:
    return LocalChain(RUNTIME if config is None else Runtime(config))


def transfer(c: LocalChain, to: bytes, value: int) -> bytes:
    return c.call("Balances", "transfer_keep_alive", AddressId(to), value)


def free(c: LocalChain, who: Keypair) -> int:
    return system.load_account(c.state, who.public_key).free


def names(c: LocalChain, result: object, index: int) -> list[str]:
    return [str(e) for e in result.extrinsic_events(index)]  # type: ignore[attr-defined]


def invalid(c: LocalChain, xt: bytes) -> InvalidTransactionError:
    with pytest.raises(InvalidTransactionError) as info:
        c.validate(xt)
    return info.value


def resign(c: LocalChain, who: Keypair, call: bytes, **overrides: object) -> bytes:
    """Sign with some of the signed-payload inputs overridden (genesis, spec version, ...)."""
    args: dict[str, object] = {
        "nonce": c.runtime.account_nonce(c.state, who.public_key),
        "genesis_hash": c.genesis_hash,
        "spec_version": c.runtime.version.spec_version,
        "transaction_version": c.runtime.version.transaction_version,
    }
    args.update(overrides)
    return build_signed_extrinsic(c.runtime.md, call, who, **args)  # type: ignore[arg-type]


# --- validate_transaction -----------------------------------------------------------------------


def test_validate_transfer_provides_sender_nonce_tag() -> None:
    """A valid transfer provides (sender, nonce), requires nothing, lives forever (immortal)."""
    c = chain()
    valid = c.validate(c.sign(ALICE, transfer(c, BOB.public_key, 10**12), tip=7))
    assert valid.sender == ALICE.public_key
    assert valid.provides == (ALICE.public_key + bytes(4),)
    assert valid.requires == ()
    assert (valid.priority, valid.longevity) == (7, 2**64 - 1)


def test_validate_future_nonce_requires_previous_tag() -> None:
    """Nonce 2 with account nonce 0 is poolable: it requires (sender, 1), as Substrate."""
    c = chain()
    valid = c.validate(c.sign(ALICE, transfer(c, BOB.public_key, ED), nonce=2))
    assert valid.provides == (ALICE.public_key + (2).to_bytes(4, "little"),)
    assert valid.requires == (ALICE.public_key + (1).to_bytes(4, "little"),)


def test_validate_stale_nonce_rejected() -> None:
    """A nonce below the account's is Stale."""
    c = chain()
    c.produce(c.sign(ALICE, transfer(c, BOB.public_key, ED)))
    e = invalid(c, c.sign(ALICE, transfer(c, BOB.public_key, ED), nonce=0))
    assert e.reason == "Stale"
    assert "Transaction is outdated" in str(e) and "nonce 0" in str(e)


def test_validate_bad_signature_rejected() -> None:
    """A signature by another key than the sender's is BadProof."""
    c = chain()
    xt = bytearray(c.sign(ALICE, transfer(c, BOB.public_key, ED)))
    by_bob = c.sign(BOB, transfer(c, BOB.public_key, ED), nonce=0)
    xt[37:102] = by_bob[37:102]  # swap the MultiSignature, keep Alice as the signer
    e = invalid(c, bytes(xt))
    assert e.reason == "BadProof" and "bad signature" in str(e)


def test_validate_wrong_genesis_rejected() -> None:
    """A transaction signed for another chain does not verify here."""
    c = chain()
    e = invalid(c, resign(c, ALICE, transfer(c, BOB.public_key, ED), genesis_hash=bytes(32)))
    assert e.reason == "BadProof"


def test_validate_wrong_spec_version_rejected() -> None:
    """CheckSpecVersion: the spec version is part of what is signed."""
    c = chain()
    e = invalid(c, resign(c, ALICE, transfer(c, BOB.public_key, ED), spec_version=99))
    assert e.reason == "BadProof"


def test_validate_mortal_era_valid_until_death() -> None:
    """A mortal transaction is valid within its period, with the remaining blocks as longevity."""
    c = chain()
    for _ in range(3):
        c.produce()
    era = Era.mortal(8, c.number)
    valid = c.validate(c.sign(ALICE, transfer(c, BOB.public_key, ED), era=era))
    death = era.death(c.number + 1)
    assert death is not None and valid.longevity == death - (c.number + 1)
    assert 0 < valid.longevity <= 8


def test_validate_expired_mortal_era_rejected() -> None:
    """After its period a mortal transaction is invalid, and the reason says it expired."""
    c = chain()
    c.produce()
    xt = c.sign(ALICE, transfer(c, BOB.public_key, ED), era=Era.mortal(4, c.number))
    c.validate(xt)
    for _ in range(4):
        c.produce()
    e = invalid(c, xt)
    assert e.reason == "BadProof"
    assert "expired" in str(e)


def test_validate_unknown_birth_block_is_ancient() -> None:
    """A mortal era whose birth block the chain does not know is AncientBirthBlock."""
    c = chain()
    for _ in range(2):
        c.produce()
    xt = resign(
        c, ALICE, transfer(c, BOB.public_key, ED), era=Era(4, 1), birth_hash=c.block_hash(1)
    )
    c.validate(xt)
    c.state.delete(system.BLOCK_HASH.key(1))
    forgetful = ChainContext(c.genesis_hash, c.number, c.head, lambda n: None)
    with pytest.raises(InvalidTransactionError) as info:
        c.runtime.validate_transaction(c.state, xt, forgetful)
    assert info.value.reason == "AncientBirthBlock"


def test_validate_unknown_call_index_is_bad_format() -> None:
    """A call index no pallet declares cannot be decoded."""
    c = chain()
    e = invalid(c, c.sign(ALICE, bytes((2, 99)) + bytes(10)))
    assert e.reason == "BadFormat" and "unknown call index (2, 99)" in str(e)
    assert invalid(c, c.sign(ALICE, bytes((42, 0)))).reason == "BadFormat"


def test_validate_trailing_call_bytes_are_bad_format() -> None:
    """Bytes after the call's arguments are not ignored."""
    c = chain()
    xt = c.sign(ALICE, transfer(c, BOB.public_key, ED) + b"\x00")
    assert invalid(c, xt).reason == "BadFormat"


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x00", b"\xff" * 40, compact_bytes(3) + b"\x84\x00", compact_bytes(2) + b"\x05\x00"],
)
def test_validate_garbage_bytes_are_bad_format(garbage: bytes) -> None:
    """Undecodable bytes get BadFormat, never an IndexError."""
    assert invalid(chain(), garbage).reason == "BadFormat"


def test_validate_unsigned_extrinsics_rejected() -> None:
    """Clients cannot send the timestamp inherent, nor any unsigned call."""
    c = chain()
    inherent = build_unsigned_extrinsic(c.runtime.md, c.call("Timestamp", "set", 5))
    assert invalid(c, inherent).reason == "MandatoryValidation"
    remark = build_unsigned_extrinsic(c.runtime.md, c.call("System", "remark", b"hi"))
    assert invalid(c, remark).reason == "NoUnsignedValidator"


def test_validate_signed_inherent_rejected() -> None:
    """Even signed, a Mandatory-class call is not a transaction."""
    c = chain()
    assert invalid(c, c.sign(ALICE, c.call("Timestamp", "set", 5))).reason == (
        "MandatoryValidation"
    )


def test_validate_non_id_address_cannot_lookup() -> None:
    """Only MultiAddress::Id signers exist on this chain."""
    c = chain()
    xt = bytearray(c.sign(ALICE, transfer(c, BOB.public_key, ED)))
    assert xt[2:4] == b"\x84\x00"  # compact(len) is 2 bytes here, then 0x84, then the Id tag
    xt[3] = 3  # Address32 with the same 32 bytes
    assert invalid(c, bytes(xt)).reason == "CannotLookup"


def test_validate_unfunded_sender_cannot_pay() -> None:
    """An account without funds cannot pay fees: Payment."""
    c = chain()
    e = invalid(c, c.sign(ZOE, transfer(c, BOB.public_key, ED)))
    assert e.reason == "Payment" and "fee" in str(e)


def test_validate_does_not_write_state() -> None:
    """Validation leaves the state untouched."""
    c = chain()
    before = dict(c.state.data)
    c.validate(c.sign(ALICE, transfer(c, BOB.public_key, ED)))
    assert c.state.data == before


# --- apply_block --------------------------------------------------------------------------------


def test_apply_block_includes_inherent_first_and_sets_timestamp() -> None:
    """Block 1: the Timestamp.set inherent is extrinsic 0; Number, ParentHash, BlockHash(0)."""
    c = chain()
    xt = c.sign(ALICE, transfer(c, BOB.public_key, ED))
    result = c.produce(xt, timestamp_ms=1_700_000_123_456)
    assert result.extrinsics[1:] == [xt]
    inherent = decode_extrinsic(c.runtime.md, result.extrinsics[0])
    assert not inherent.is_signed
    assert c.runtime.decode_call(inherent.call_data).name == "Timestamp.set"
    assert timestamp.NOW.value(c.state) == 1_700_000_123_456 == result.timestamp_ms
    assert timestamp.DID_UPDATE.value(c.state) is False
    assert system.NUMBER.value(c.state) == 1
    assert system.PARENT_HASH.value(c.state) == c.genesis_hash
    assert system.BLOCK_HASH.value(c.state, 0) == c.genesis_hash
    assert names(c, result, 0) == ["System.ExtrinsicSuccess"]
    assert result.events[0].args[0].dispatch_class is DispatchClass.Mandatory


def test_apply_block_wrong_number_raises() -> None:
    """The node cannot apply block 3 on the state of block 0."""
    c = chain()
    with pytest.raises(BlockExecutionError, match="#3"):
        c.runtime.apply_block(c.state, 3, c.head, 1, [], c.ctx())


def test_apply_block_timestamp_raised_to_minimum_period() -> None:
    """A time that does not advance by MinimumPeriod is raised to it (instant seal)."""
    c = chain(RuntimeConfig(minimum_period_ms=500))
    c.produce(timestamp_ms=10_000)
    result = c.produce(timestamp_ms=10_100)
    assert result.timestamp_ms == 10_500 == timestamp.NOW.value(c.state)


def test_apply_block_drops_invalid_and_defers_future() -> None:
    """Invalid extrinsics are dropped, future ones deferred, neither is included."""
    c = chain()
    good = c.sign(ALICE, transfer(c, BOB.public_key, ED))
    stale_after_good = c.sign(ALICE, transfer(c, CHARLIE.public_key, ED), nonce=0)
    future = c.sign(ALICE, transfer(c, CHARLIE.public_key, ED), nonce=5)
    result = c.produce(good, stale_after_good, future, b"\x00garbage")
    assert result.extrinsics[1:] == [good]
    assert [x for x, _ in result.dropped] == [stale_after_good, b"\x00garbage"]
    assert "outdated" in result.dropped[0][1]
    assert [x for x, _ in result.deferred] == [future]
    assert "future" in result.deferred[0][1]


def test_apply_block_nonces_in_sequence_in_one_block() -> None:
    """Several transactions of one sender, nonces 0..2, all go into one block."""
    c = chain()
    xts = [c.sign(ALICE, transfer(c, BOB.public_key, ED), nonce=n) for n in range(3)]
    assert c.produce(*xts).extrinsics[1:] == xts
    assert c.runtime.account_nonce(c.state, ALICE.public_key) == 3


def test_apply_block_failed_call_pays_fee_and_bumps_nonce() -> None:
    """A failing call: ExtrinsicFailed with the module error, the fee is paid, nonce bumped,
    and nothing else changes."""
    c = chain()
    alice_before, bob_before = free(c, ALICE), free(c, BOB)
    xt = c.sign(ALICE, transfer(c, BOB.public_key, alice_before))
    result = c.produce(xt)
    assert result.dispatch_error(1) == "Balances.InsufficientBalance"
    assert names(c, result, 1) == [
        "Balances.Withdraw",
        "TransactionPayment.TransactionFeePaid",
        "System.ExtrinsicFailed",
    ]
    assert result.failure_detail(1) == (
        f"Balances.InsufficientBalance: free balance {alice_before - c.runtime.fee(len(xt))} "
        f"< {alice_before}"
    )
    assert result.failure_detail(0) is None
    assert free(c, ALICE) == alice_before - c.runtime.fee(len(xt))
    assert free(c, BOB) == bob_before
    assert c.runtime.account_nonce(c.state, ALICE.public_key) == 1


def test_apply_block_fee_and_tip_are_burnt() -> None:
    """Withdrawn fees and tips reduce the total issuance."""
    c = chain()
    issuance = balances.TOTAL_ISSUANCE.value(c.state)
    xt = c.sign(ALICE, transfer(c, BOB.public_key, ED), tip=1_000)
    result = c.produce(xt)
    paid = c.runtime.fee(len(xt)) + 1_000
    withdraw = [e for e in result.extrinsic_events(1) if str(e) == "Balances.Withdraw"]
    assert withdraw[0].args == (ALICE.public_key, paid)
    assert balances.TOTAL_ISSUANCE.value(c.state) == issuance - paid


def test_apply_block_events_storage_matches_result() -> None:
    """System.Events holds every record; EventCount agrees and is reset by the next block."""
    c = chain()
    result = c.produce(c.sign(ALICE, transfer(c, BOB.public_key, ED)))
    raw = c.state.get(system.EVENTS.prefix)
    assert raw is not None and raw[0] == len(result.events) << 2
    assert system.EVENT_COUNT.value(c.state) == len(result.events) == 5
    c.produce()
    assert system.EVENT_COUNT.value(c.state) == 1


def test_apply_block_is_deterministic() -> None:
    """The same blocks on the same genesis give the same state and block hashes."""
    first = chain()
    xts = [
        first.sign(ALICE, transfer(first, BOB.public_key, 5 * ED)),
        first.sign(BOB, first.call("System", "remark_with_event", b"x")),
    ]
    runs = []
    for c in (first, chain()):
        for xt in xts:  # sr25519 signatures are randomised: sign once, apply twice
            c.produce(xt, timestamp_ms=T0 + 6_000 * c.number)
        runs.append((c.state.data, c.hashes))
    assert runs[0] == runs[1]


def test_apply_block_defers_what_exceeds_the_block_length() -> None:
    """Extrinsics that no longer fit the block's length limit wait for the next block."""
    c = chain()
    big = b"\x00" * (1024 * 1024)
    xts = [c.sign(ALICE, c.call("System", "remark", big), nonce=n) for n in range(4)]
    result = c.produce(*xts)
    assert result.extrinsics[1:] == xts[:3]
    assert [x for x, _ in result.deferred] == [xts[3]]
    assert "exhaust" in result.deferred[0][1]
    assert c.produce(xts[3]).extrinsics[1:] == [xts[3]]


def test_apply_block_prunes_old_block_hashes() -> None:
    """BlockHash keeps BlockHashCount entries, as frame_system."""
    runtime = RUNTIME
    state = DictStorage(runtime.genesis_storage())
    number = system.BLOCK_HASH_COUNT + 2
    system.NUMBER.put(state, number - 1)
    system.BLOCK_HASH.insert(state, 1, b"\x01" * 32)
    ctx = ChainContext(b"\x00" * 32, number - 1, b"\x02" * 32, lambda n: None)
    runtime.apply_block(state, number, b"\x02" * 32, 1, [], ctx)
    assert not system.BLOCK_HASH.contains(state, 1)
    assert system.BLOCK_HASH.value(state, number - 1) == b"\x02" * 32


# --- runtime APIs -------------------------------------------------------------------------------


def test_call_api_account_nonce() -> None:
    """AccountNonceApi_account_nonce(AccountId) -> u32 LE."""
    c = chain()
    c.produce(c.sign(ALICE, transfer(c, BOB.public_key, ED)))
    out = c.runtime.call_api(c.state, "AccountNonceApi_account_nonce", ALICE.public_key)
    assert U32.decode(out) == 1 == c.runtime.account_nonce(c.state, ALICE.public_key)


def test_call_api_metadata_versions_and_at_version() -> None:
    """V14 is offered; any other version answers None (0x00)."""
    c = chain()
    rt = c.runtime
    assert Vec(U32).decode(rt.call_api(c.state, "Metadata_metadata_versions", b"")) == [14]
    at14 = rt.call_api(c.state, "Metadata_metadata_at_version", U32.encode(14))
    assert Option(Bytes).decode(at14) == rt.metadata()
    assert rt.call_api(c.state, "Metadata_metadata_at_version", U32.encode(15)) == b"\x00"
    assert Bytes.decode(rt.call_api(c.state, "Metadata_metadata", b"")) == rt.metadata()
    assert rt.metadata().startswith(b"meta\x0e")


def test_call_api_unknown_method_has_substrates_message() -> None:
    """The exact text async-substrate-interface falls back on."""
    with pytest.raises(UnknownRuntimeApiError) as info:
        RUNTIME.call_api(DictStorage(), "Foo_bar", b"")
    assert str(info.value) == "Exported method Foo_bar is not found"


def test_call_api_bad_params_raise_runtime_api_error() -> None:
    """Parameters that do not decode are a RuntimeApiError, not a crash."""
    c = chain()
    for method, params in [
        ("AccountNonceApi_account_nonce", b"\x01"),
        ("Core_version", b"\x01"),
        ("TransactionPaymentApi_query_info", b"\x08\x84"),
        ("Metadata_metadata_at_version", b""),
    ]:
        with pytest.raises(RuntimeApiError):
            c.runtime.call_api(c.state, method, params)


def test_call_api_query_info_matches_the_fee_charged() -> None:
    """TransactionPaymentApi_query_info gives the weight, class and the fee actually taken,
    without checking the signature (clients estimate with a dummy one)."""
    c = chain()
    xt = c.sign(ALICE, transfer(c, BOB.public_key, ED))
    dummy = bytearray(xt)
    dummy[37:101] = bytes(64)
    out = c.runtime.call_api(
        c.state, "TransactionPaymentApi_query_info", bytes(dummy) + U32.encode(len(xt))
    )
    weight, dispatch_class, partial_fee = RUNTIME_DISPATCH_INFO_T.codec.decode(out)
    assert dispatch_class is DispatchClass.Normal
    assert weight == balances.TRANSFER_WEIGHT + system.BASE_EXTRINSIC_WEIGHT
    assert partial_fee == c.runtime.fee(len(xt))
    result = c.produce(xt)
    withdraw = [e for e in result.extrinsic_events(1) if str(e) == "Balances.Withdraw"]
    assert withdraw[0].args[1] == partial_fee
    details = c.runtime.call_api(
        c.state, "TransactionPaymentApi_query_fee_details", xt + U32.encode(len(xt))
    )
    assert details[0] == 1 and len(details) == 1 + 4 * 16


def test_call_api_core_version_and_grandpa() -> None:
    """Core_version is SCALE(RuntimeVersion); GRANDPA APIs read the genesis authority set."""
    c = chain()
    assert c.runtime.call_api(c.state, "Core_version", b"") == c.runtime.version.encode()
    authorities = c.runtime.call_api(c.state, "GrandpaApi_grandpa_authorities", b"")
    raw = c.state.get(GRANDPA_AUTHORITIES_KEY)
    assert raw is not None and authorities == raw[1:]
    assert U64.decode(c.runtime.call_api(c.state, "GrandpaApi_current_set_id", b"")) == 0


def test_call_api_tagged_transaction_queue() -> None:
    """TaggedTransactionQueue_validate_transaction: Ok(ValidTransaction) or Err(validity)."""
    c = chain()
    xt = c.sign(ALICE, transfer(c, BOB.public_key, ED))
    method = "TaggedTransactionQueue_validate_transaction"
    ok = c.runtime.call_api(c.state, method, b"\x02" + xt + c.head, c.ctx())
    assert ok[0] == 0 and ok.endswith(U64.encode(2**64 - 1) + b"\x01")
    stale = c.sign(ALICE, transfer(c, BOB.public_key, ED), nonce=0)
    c.produce(xt)
    err = c.runtime.call_api(c.state, method, b"\x02" + stale + c.head, c.ctx())
    assert err == b"\x01\x00\x03"  # Err(Invalid(Stale))
    with pytest.raises(RuntimeApiError, match="chain context"):
        c.runtime.call_api(c.state, method, b"\x02" + xt + c.head)


def test_runtime_version_json_and_properties() -> None:
    """state_getRuntimeVersion JSON lists the Metadata API v2; properties are TEER's."""
    version = RUNTIME.runtime_version_json()
    assert version["specName"] == "tocw-dev" and version["stateVersion"] == 1
    assert ["0x37e397fc7c91f5e4", 2] in version["apis"]
    assert RUNTIME.properties() == {"ss58Format": 42, "tokenDecimals": 12, "tokenSymbol": "TEER"}


def test_encode_call_rejects_bad_arguments() -> None:
    """Composing a call with a value its codec refuses is a ValueError naming the call."""
    with pytest.raises(ValueError, match=r"Balances\.transfer"):
        RUNTIME.encode_call("Balances", "transfer", Address32(bytes(32)), -1)
