"""TransactionPayment: the fee model and the TransactionFeePaid event clients read fees from."""

from __future__ import annotations

from tocw.chain.pallets import balances, system, transaction_payment
from tocw.chain.pallets.substrate_types import AddressId
from tocw.chain.runtime import PALLETS, BlockResult, LocalChain, Runtime, RuntimeConfig
from tocw.primitives.events import decode_events
from tocw.primitives.keys import Keypair, KeyScheme

RUNTIME = Runtime()
ED = RUNTIME.config.existential_deposit
ALICE = Keypair.from_uri("//Alice", KeyScheme.SR25519)
BOB = Keypair.from_uri("//Bob", KeyScheme.SR25519)


def fee_paid(result: BlockResult, index: int) -> list[tuple[object, ...]]:
    return [
        e.args
        for e in result.extrinsic_events(index)
        if str(e) == "TransactionPayment.TransactionFeePaid"
    ]


def test_transaction_payment_comes_after_sudo() -> None:
    """Added last, so the indices of the pallets declared before it did not move."""
    names = [p.name for p in PALLETS]
    assert names.index("TransactionPayment") == names.index("Sudo") + 1 == len(names) - 1


def test_inclusion_fee_is_base_plus_length() -> None:
    """fee = base + byte fee * length, whatever the call; the runtime charges exactly that."""
    config = RuntimeConfig(transaction_base_fee=7, transaction_byte_fee=3)
    assert transaction_payment.inclusion_fee(config, 100) == 7 + 300
    assert Runtime(config).fee(100) == 307


def test_fee_paid_event_has_the_fee_including_the_tip() -> None:
    """actual_fee = inclusion fee + tip, the amount withdrawn; tip is reported on its own; the
    event comes after the call's events and before ExtrinsicSuccess, as in Substrate."""
    c = LocalChain(RUNTIME)
    xt = c.sign(ALICE, c.call("Balances", "transfer", AddressId(BOB.public_key), ED), tip=1_234)
    result = c.produce(xt)
    actual = RUNTIME.fee(len(xt)) + 1_234
    assert fee_paid(result, 1) == [(ALICE.public_key, actual, 1_234)]
    names = [str(e) for e in result.extrinsic_events(1)]
    assert names[-2:] == ["TransactionPayment.TransactionFeePaid", "System.ExtrinsicSuccess"]
    withdraw = [e.args for e in result.extrinsic_events(1) if str(e) == "Balances.Withdraw"]
    assert withdraw == [(ALICE.public_key, actual)]


def test_fee_paid_event_also_for_a_failed_call() -> None:
    """A call that fails still pays, and says so (post_dispatch runs either way)."""
    c = LocalChain(RUNTIME)
    too_much = c.call("Balances", "transfer", AddressId(BOB.public_key), 1 << 100)
    xt = c.sign(ALICE, too_much)
    result = c.produce(xt)
    assert result.dispatch_error(1) == "Balances.InsufficientBalance"
    assert fee_paid(result, 1) == [(ALICE.public_key, RUNTIME.fee(len(xt)), 0)]


def test_fee_paid_event_with_zero_fees() -> None:
    """A chain without fees still reports a (zero) fee, and withdraws nothing."""
    c = LocalChain(Runtime(RuntimeConfig(transaction_base_fee=0, transaction_byte_fee=0)))
    result = c.produce(c.sign(ALICE, c.call("System", "remark", b"free")))
    assert fee_paid(result, 1) == [(ALICE.public_key, 0, 0)]
    assert not [e for e in result.extrinsic_events(1) if e.pallet == balances.NAME]


def test_inherent_pays_no_fee() -> None:
    """The unsigned timestamp inherent has no TransactionFeePaid."""
    result = LocalChain(RUNTIME).produce()
    assert fee_paid(result, 0) == []


def test_fee_paid_event_decodes_with_the_served_metadata() -> None:
    """The event as clients decode it (tocw.primitives.events over the runtime's metadata)."""
    c = LocalChain(RUNTIME)
    xt = c.sign(ALICE, c.call("System", "remark", b"x"), tip=5)
    c.produce(xt)
    records = decode_events(RUNTIME.md, c.state.get(system.EVENTS.prefix))
    [paid] = [r for r in records if r.is_event("TransactionPayment", "TransactionFeePaid")]
    assert paid.attributes == {
        "who": ALICE.public_key,
        "actual_fee": RUNTIME.fee(len(xt)) + 5,
        "tip": 5,
    }


def test_next_fee_multiplier_defaults_to_one() -> None:
    """NextFeeMultiplier is never written and reads as 1.0 (FixedU128 10^18), as with
    ConstFeeMultiplier; the metadata advertises that default."""
    c = LocalChain(RUNTIME)
    c.produce()
    assert c.state.get(transaction_payment.NEXT_FEE_MULTIPLIER.prefix) is None
    assert transaction_payment.NEXT_FEE_MULTIPLIER.value(c.state) == 10**18
    entry = RUNTIME.md.storage("TransactionPayment", "NextFeeMultiplier")
    assert RUNTIME.md.decode(entry.value_type_id, entry.default) == 10**18
