"""Balances: pre/op/post vectors for transfers, the existential deposit, fees and root calls."""

from __future__ import annotations

from typing import Any

import pytest

from tocw.chain.pallets import balances, system
from tocw.chain.pallets.substrate_types import AccountInfo, AddressId, AddressIndex, AddressRaw
from tocw.chain.runtime import BlockResult, LocalChain, Runtime, RuntimeConfig
from tocw.primitives.keys import Keypair, KeyScheme

RUNTIME = Runtime()
ED = RUNTIME.config.existential_deposit
ALICE = Keypair.from_uri("//Alice", KeyScheme.SR25519)
BOB = Keypair.from_uri("//Bob", KeyScheme.SR25519)
ZOE = Keypair.from_uri("//Zoe", KeyScheme.SR25519)  # not endowed
YAN = Keypair.from_uri("//Yan", KeyScheme.SR25519)  # not endowed


def submit(c: LocalChain, who: Keypair, call: bytes) -> tuple[BlockResult, int]:
    """Put `who`'s call alone into the next block; returns the result and the fee paid."""
    xt = c.sign(who, call)
    result = c.produce(xt)
    assert result.extrinsics[1:] == [xt], (result.dropped, result.deferred)
    return result, c.runtime.fee(len(xt))


def events(result: BlockResult) -> list[tuple[str, tuple[Any, ...]]]:
    return [(str(e), e.args) for e in result.extrinsic_events(1)]


def account(c: LocalChain, who: Keypair) -> AccountInfo:
    return system.load_account(c.state, who.public_key)


def exists(c: LocalChain, who: Keypair) -> bool:
    return system.ACCOUNT.contains(c.state, who.public_key)


def issuance(c: LocalChain) -> int:
    return balances.TOTAL_ISSUANCE.value(c.state)


def transfer(c: LocalChain, name: str, to: Keypair, value: int) -> bytes:
    return c.call("Balances", name, AddressId(to.public_key), value)


def sudo(c: LocalChain, pallet: str, name: str, *args: Any) -> bytes:
    return c.call("Sudo", "sudo", c.runtime.decode_call(c.call(pallet, name, *args)))


def fund(c: LocalChain, who: Keypair, amount: int) -> None:
    result, _ = submit(c, ALICE, transfer(c, "transfer_allow_death", who, amount))
    assert result.dispatch_error(1) is None


def leaving(c: LocalChain, who: Keypair, name: str, to: Keypair, left: int) -> bytes:
    """A signed transfer of everything but `left` after the fee (the fee depends on the
    extrinsic's length, which depends on the amount: iterate until stable)."""
    free = account(c, who).free
    value = free - left
    for _ in range(3):
        xt = c.sign(who, transfer(c, name, to, value))
        wanted = free - c.runtime.fee(len(xt)) - left
        if wanted == value:
            return xt
        value = wanted
    raise AssertionError("fee did not converge")


def test_transfer_creates_the_recipient_account() -> None:
    """A transfer of >= ED to a new account: NewAccount, Endowed, Transfer; fee burnt."""
    c = LocalChain(RUNTIME)
    alice_before, supply = account(c, ALICE).free, issuance(c)
    result, fee = submit(c, ALICE, transfer(c, "transfer_allow_death", ZOE, 5 * ED))
    assert events(result) == [
        ("Balances.Withdraw", (ALICE.public_key, fee)),
        ("System.NewAccount", (ZOE.public_key,)),
        ("Balances.Endowed", (ZOE.public_key, 5 * ED)),
        ("Balances.Transfer", (ALICE.public_key, ZOE.public_key, 5 * ED)),
        ("TransactionPayment.TransactionFeePaid", (ALICE.public_key, fee, 0)),
        ("System.ExtrinsicSuccess", result.extrinsic_events(1)[-1].args),
    ]
    assert account(c, ALICE).free == alice_before - 5 * ED - fee
    assert account(c, ZOE) == AccountInfo(providers=1, free=5 * ED)
    assert issuance(c) == supply - fee


def test_transfer_below_existential_deposit_to_new_account_fails() -> None:
    """Creating an account with less than the ED fails with Balances.ExistentialDeposit."""
    c = LocalChain(RUNTIME)
    result, _ = submit(c, ALICE, transfer(c, "transfer_allow_death", ZOE, ED - 1))
    assert result.dispatch_error(1) == "Balances.ExistentialDeposit"
    assert not exists(c, ZOE)


def test_transfer_to_an_existing_account_may_be_below_ed() -> None:
    """Adding less than the ED to an existing account is fine."""
    c = LocalChain(RUNTIME)
    before = account(c, BOB).free
    result, _ = submit(c, ALICE, transfer(c, "transfer_keep_alive", BOB, 1))
    assert result.dispatch_error(1) is None
    assert account(c, BOB).free == before + 1


def test_transfer_keep_alive_refuses_to_kill_the_sender() -> None:
    """transfer_keep_alive leaving the sender below the ED fails with Expendability."""
    c = LocalChain(RUNTIME)
    fund(c, ZOE, 10 * ED)
    xt = leaving(c, ZOE, "transfer_keep_alive", BOB, ED // 2)
    result = c.produce(xt)
    assert result.dispatch_error(1) == "Balances.Expendability"
    assert account(c, ZOE).free == 10 * ED - c.runtime.fee(len(xt))
    assert account(c, ZOE).nonce == 1


def test_transfer_allow_death_reaps_the_sender() -> None:
    """Sending all but dust reaps the sender: KilledAccount, DustLost; nonce and entry gone."""
    c = LocalChain(RUNTIME)
    fund(c, ZOE, 10 * ED)
    supply = issuance(c)
    dust = ED // 2
    xt = leaving(c, ZOE, "transfer_allow_death", YAN, dust)
    result = c.produce(xt)
    fee = c.runtime.fee(len(xt))
    sent = 10 * ED - fee - dust
    assert [name for name, _ in events(result)] == [
        "Balances.Withdraw",
        "System.KilledAccount",
        "Balances.DustLost",
        "System.NewAccount",
        "Balances.Endowed",
        "Balances.Transfer",
        "TransactionPayment.TransactionFeePaid",
        "System.ExtrinsicSuccess",
    ]
    assert events(result)[2] == ("Balances.DustLost", (ZOE.public_key, dust))
    assert not exists(c, ZOE)
    assert account(c, YAN).free == sent
    assert issuance(c) == supply - fee - dust


def test_transfer_more_than_free_fails_but_pays() -> None:
    """InsufficientBalance: only the fee moves, the nonce is bumped."""
    c = LocalChain(RUNTIME)
    before = account(c, BOB).free
    result, fee = submit(c, BOB, transfer(c, "transfer", ALICE, before))
    assert result.dispatch_error(1) == "Balances.InsufficientBalance"
    assert account(c, BOB) == AccountInfo(nonce=1, providers=1, free=before - fee)


def test_transfer_zero_or_to_self_is_a_no_op() -> None:
    """Zero value or sender == recipient: success without a Transfer event."""
    c = LocalChain(RUNTIME)
    for call in (
        transfer(c, "transfer_allow_death", ZOE, 0),
        transfer(c, "transfer_allow_death", ALICE, 5 * ED),
    ):
        result, _ = submit(c, ALICE, call)
        assert [n for n, _ in events(result)] == [
            "Balances.Withdraw",
            "TransactionPayment.TransactionFeePaid",
            "System.ExtrinsicSuccess",
        ]
    assert not exists(c, ZOE)


@pytest.mark.parametrize("address", [AddressIndex(()), AddressRaw(b"\x01" * 32)])
def test_transfer_to_a_non_id_address_cannot_lookup(address: Any) -> None:
    """Only MultiAddress::Id names an account: others fail with CannotLookup."""
    c = LocalChain(RUNTIME)
    result, _ = submit(c, ALICE, c.call("Balances", "transfer_allow_death", address, ED))
    assert result.dispatch_error(1) == "CannotLookup"


def test_transfer_all_keep_alive_leaves_the_ed() -> None:
    """transfer_all(keep_alive=true) sends everything above the existential deposit."""
    c = LocalChain(RUNTIME)
    fund(c, ZOE, 10 * ED)
    call = c.call("Balances", "transfer_all", AddressId(YAN.public_key), True)
    result, fee = submit(c, ZOE, call)
    assert result.dispatch_error(1) is None
    assert account(c, ZOE).free == ED
    assert account(c, YAN).free == 9 * ED - fee


def test_transfer_all_allow_death_empties_the_account() -> None:
    """transfer_all(keep_alive=false) sends everything and reaps the sender (no dust)."""
    c = LocalChain(RUNTIME)
    fund(c, ZOE, 10 * ED)
    result, fee = submit(
        c, ZOE, c.call("Balances", "transfer_all", AddressId(YAN.public_key), False)
    )
    assert "Balances.DustLost" not in [n for n, _ in events(result)]
    assert not exists(c, ZOE)
    assert account(c, YAN).free == 10 * ED - fee


def test_force_set_balance_through_sudo() -> None:
    """Root sets Bob's balance: BalanceSet, issuance follows; a value below the ED wipes out."""
    c = LocalChain(RUNTIME)
    supply = issuance(c)
    bob_before = account(c, BOB).free
    result, fee = submit(
        c, ALICE, sudo(c, "Balances", "force_set_balance", AddressId(BOB.public_key), 7 * ED)
    )
    assert ("Balances.BalanceSet", (BOB.public_key, 7 * ED)) in events(result)
    assert ("Sudo.Sudid", (None,)) in events(result)
    assert account(c, BOB).free == 7 * ED
    assert issuance(c) == supply - fee - bob_before + 7 * ED
    result, _ = submit(
        c, ALICE, sudo(c, "Balances", "force_set_balance", AddressId(BOB.public_key), ED - 1)
    )
    assert ("Balances.BalanceSet", (BOB.public_key, 0)) in events(result)
    assert ("System.KilledAccount", (BOB.public_key,)) in events(result)
    assert not exists(c, BOB)


def test_force_set_balance_creates_an_account() -> None:
    """Setting a balance on a new account endows it."""
    c = LocalChain(RUNTIME)
    result, _ = submit(
        c, ALICE, sudo(c, "Balances", "force_set_balance", AddressId(ZOE.public_key), 3 * ED)
    )
    assert ("Balances.Endowed", (ZOE.public_key, 3 * ED)) in events(result)
    assert account(c, ZOE) == AccountInfo(providers=1, free=3 * ED)


def test_root_calls_refuse_signed_origins() -> None:
    """force_set_balance and force_transfer without Sudo fail with BadOrigin."""
    c = LocalChain(RUNTIME)
    for call in (
        c.call("Balances", "force_set_balance", AddressId(BOB.public_key), ED),
        c.call(
            "Balances",
            "force_transfer",
            AddressId(BOB.public_key),
            AddressId(ALICE.public_key),
            ED,
        ),
    ):
        result, _ = submit(c, ALICE, call)
        assert result.dispatch_error(1) == "BadOrigin"


def test_force_transfer_moves_anyones_funds() -> None:
    """Root moves funds from Bob to a new account."""
    c = LocalChain(RUNTIME)
    bob_before = account(c, BOB).free
    call = sudo(
        c,
        "Balances",
        "force_transfer",
        AddressId(BOB.public_key),
        AddressId(ZOE.public_key),
        2 * ED,
    )
    result, _ = submit(c, ALICE, call)
    assert ("Balances.Transfer", (BOB.public_key, ZOE.public_key, 2 * ED)) in events(result)
    assert account(c, BOB).free == bob_before - 2 * ED


def test_existential_deposit_is_configurable() -> None:
    """The ED of the config is what the pallet enforces and the constant advertises."""
    c = LocalChain(Runtime(RuntimeConfig(existential_deposit=10**12)))
    result, _ = submit(c, ALICE, transfer(c, "transfer_allow_death", ZOE, 10**12 - 1))
    assert result.dispatch_error(1) == "Balances.ExistentialDeposit"
    constant = next(k for k in balances.PALLET.constants if k.name == "ExistentialDeposit")
    assert constant.encoded(c.runtime.config) == (10**12).to_bytes(16, "little")
