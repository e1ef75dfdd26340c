"""Sudo and System: root dispatch (transactional inner calls), remarks, storage calls."""

from __future__ import annotations

from typing import Any

from tocw.chain.pallets import sudo, system
from tocw.chain.pallets.framework import describe_encoded_error
from tocw.chain.pallets.substrate_types import AddressId
from tocw.chain.runtime import PALLETS, BlockResult, LocalChain, Runtime
from tocw.primitives.hashing import blake2_256
from tocw.primitives.keys import Keypair, KeyScheme

RUNTIME = Runtime()
ED = RUNTIME.config.existential_deposit
ALICE = Keypair.from_uri("//Alice", KeyScheme.SR25519)
BOB = Keypair.from_uri("//Bob", KeyScheme.SR25519)
ZOE = Keypair.from_uri("//Zoe", KeyScheme.SR25519)


def submit(c: LocalChain, who: Keypair, call: bytes) -> BlockResult:
    xt = c.sign(who, call)
    result = c.produce(xt)
    assert result.extrinsics[1:] == [xt], (result.dropped, result.deferred)
    return result


def events(result: BlockResult) -> list[tuple[str, tuple[Any, ...]]]:
    return [(str(e), e.args) for e in result.extrinsic_events(1)]


def inner(c: LocalChain, pallet: str, name: str, *args: Any) -> Any:
    return c.runtime.decode_call(c.call(pallet, name, *args))


def sudo_error(result: BlockResult, event: str = "Sudo.Sudid") -> str | None:
    """The inner call's error carried by Sudid / SudoAsDone (None: it succeeded)."""
    (args,) = [a for n, a in events(result) if n == event]
    return None if args[0] is None else describe_encoded_error(args[0], PALLETS)


def test_sudo_by_the_key_dispatches_as_root() -> None:
    """The sudo key's sudo(set_storage) runs the root-only call; Sudid(Ok)."""
    c = LocalChain(RUNTIME)
    set_storage = inner(c, "System", "set_storage", [(b":test:key", b"value")])
    result = submit(c, ALICE, c.call("Sudo", "sudo", set_storage))
    assert result.dispatch_error(1) is None
    assert sudo_error(result) is None
    assert c.state.get(b":test:key") == b"value"


def test_sudo_by_another_account_is_refused() -> None:
    """Only the sudo key may call sudo: Sudo.RequireSudo, nothing dispatched."""
    c = LocalChain(RUNTIME)
    set_storage = inner(c, "System", "set_storage", [(b":test:key", b"value")])
    result = submit(c, BOB, c.call("Sudo", "sudo", set_storage))
    assert result.dispatch_error(1) == "Sudo.RequireSudo"
    assert c.state.get(b":test:key") is None


def test_sudo_inner_failure_is_rolled_back_and_reported() -> None:
    """A failing inner call: Sudid(Err(..)), the extrinsic succeeds, its partial effects and
    events are dropped."""
    c = LocalChain(RUNTIME)
    bob_before = system.load_account(c.state, BOB.public_key).free
    too_much = inner(
        c,
        "Balances",
        "force_transfer",
        AddressId(BOB.public_key),
        AddressId(ZOE.public_key),
        bob_before + 1,
    )
    result = submit(c, ALICE, c.call("Sudo", "sudo", too_much))
    assert result.dispatch_error(1) is None
    assert sudo_error(result) == "Balances.InsufficientBalance"
    assert [n for n, _ in events(result)] == [
        "Balances.Withdraw",
        "Sudo.Sudid",
        "TransactionPayment.TransactionFeePaid",
        "System.ExtrinsicSuccess",
    ]
    assert system.load_account(c.state, BOB.public_key).free == bob_before


def test_sudo_as_dispatches_as_the_given_account() -> None:
    """sudo_as(Bob, transfer) moves Bob's funds without Bob's signature; SudoAsDone(Ok)."""
    c = LocalChain(RUNTIME)
    transfer = inner(c, "Balances", "transfer_allow_death", AddressId(ZOE.public_key), 2 * ED)
    result = submit(c, ALICE, c.call("Sudo", "sudo_as", AddressId(BOB.public_key), transfer))
    assert sudo_error(result, "Sudo.SudoAsDone") is None
    assert ("Balances.Transfer", (BOB.public_key, ZOE.public_key, 2 * ED)) in events(result)


def test_sudo_set_key_hands_over_and_nests() -> None:
    """set_key moves the key (KeyChanged with the old one). A nested sudo(sudo(..)) decodes,
    and its inner sudo fails with BadOrigin: Root is not the (signed) sudo key, as Substrate."""
    c = LocalChain(RUNTIME)
    result = submit(c, ALICE, c.call("Sudo", "set_key", AddressId(BOB.public_key)))
    assert ("Sudo.KeyChanged", (ALICE.public_key,)) in events(result)
    assert sudo.KEY.get(c.state) == BOB.public_key
    remark = inner(c, "System", "kill_storage", [b":nothing"])
    nested = inner(c, "Sudo", "sudo", remark)
    result = submit(c, BOB, c.call("Sudo", "sudo", nested))
    assert sudo_error(result) == "BadOrigin"
    assert submit(c, ALICE, c.call("Sudo", "sudo", remark)).dispatch_error(1) == (
        "Sudo.RequireSudo"
    )


def test_system_remarks() -> None:
    """remark has no effect; remark_with_event emits Remarked(sender, blake2_256(remark))."""
    c = LocalChain(RUNTIME)
    result = submit(c, BOB, c.call("System", "remark", b"hello"))
    assert [n for n, _ in events(result)] == [
        "Balances.Withdraw",
        "TransactionPayment.TransactionFeePaid",
        "System.ExtrinsicSuccess",
    ]
    result = submit(c, BOB, c.call("System", "remark_with_event", b"hello"))
    assert ("System.Remarked", (BOB.public_key, blake2_256(b"hello"))) in events(result)


def test_system_storage_calls_need_root() -> None:
    """set_storage / kill_storage / kill_prefix: BadOrigin when signed, effective as root."""
    c = LocalChain(RUNTIME)
    items = [(b":t:1", b"a"), (b":t:2", b"b"), (b":u", b"c")]
    assert submit(c, BOB, c.call("System", "set_storage", items)).dispatch_error(1) == ("BadOrigin")
    submit(c, ALICE, c.call("Sudo", "sudo", inner(c, "System", "set_storage", items)))
    assert [c.state.get(k) for k, _ in items] == [b"a", b"b", b"c"]
    submit(c, ALICE, c.call("Sudo", "sudo", inner(c, "System", "kill_prefix", b":t:", 2)))
    assert [c.state.get(k) for k, _ in items] == [None, None, b"c"]
    submit(c, ALICE, c.call("Sudo", "sudo", inner(c, "System", "kill_storage", [b":u"])))
    assert c.state.get(b":u") is None


def test_timestamp_set_needs_the_none_origin() -> None:
    """Timestamp.set dispatched as root (via sudo) fails with BadOrigin: inherent only."""
    c = LocalChain(RUNTIME)
    result = submit(c, ALICE, c.call("Sudo", "sudo", inner(c, "Timestamp", "set", 5)))
    assert sudo_error(result) == "BadOrigin"
