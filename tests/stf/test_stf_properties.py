"""Properties of the balances and auction modules over random call sequences (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tocw.primitives.keys import Keypair, KeyScheme
from tocw.primitives.trusted import (
    BalanceSetBalance,
    BalanceShield,
    BalanceTransfer,
    BalanceUnshield,
    ParentchainId,
    sign_call,
)
from tocw.primitives.types import Balance, BlockNumber, Moment, MrEnclave, Nonce, ShardId
from tocw.stf.errors import DispatchError
from tocw.stf.modules import auction, balances
from tocw.stf.modules.auction import AuctionBid, AuctionClose, AuctionCreate
from tocw.stf.registry import build_stf
from tocw.stf.state import State
from tocw.stf.system import account_nonce
from tocw.stf.types import CallEnv

KEYS = [Keypair.from_uri(u) for u in ("//Alice", "//Bob", "//Charlie")]
ENCLAVE = Keypair.from_uri("//Enclave", KeyScheme.ED25519)
SHARD, MRENCLAVE = ShardId(b"\x01" * 32), MrEnclave(b"\x02" * 32)
STF = build_stf(["balances", "auction"])

who = st.integers(0, len(KEYS) - 1)
amount = st.integers(0, 300)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("shield"), who, amount, st.just(0)),
        st.tuples(st.just("set"), who, amount, amount),
        st.tuples(st.just("transfer"), who, who, amount),
        st.tuples(st.just("unshield"), who, who, amount),
        st.tuples(st.just("create"), who, amount, st.integers(1, 3)),
        st.tuples(st.just("bid"), who, st.integers(0, 2), amount),
        st.tuples(st.just("close"), who, st.integers(0, 2), st.just(0)),
        st.tuples(st.just("tick"), st.just(0), st.just(0), st.just(0)),
    ),
    max_size=40,
)


def _call(op: str, x: int, y: int, z: int, now: int) -> tuple[Any, Keypair | None]:
    acc = [k.account_id for k in KEYS]
    if op == "shield":
        return BalanceShield(ENCLAVE.account_id, acc[x], Balance(y), ParentchainId.INTEGRITEE), None
    if op == "set":
        return BalanceSetBalance(acc[0], acc[x], Balance(y), Balance(z)), KEYS[0]
    if op == "transfer":
        return BalanceTransfer(acc[x], acc[y], Balance(z)), KEYS[x]
    if op == "unshield":
        return BalanceUnshield(acc[x], acc[y], Balance(z), SHARD), KEYS[x]
    if op == "create":
        return AuctionCreate(acc[x], b"item", Balance(y), Moment(now + z * 1000)), KEYS[x]
    if op == "bid":
        return AuctionBid(acc[x], y, Balance(z)), KEYS[x]
    return AuctionClose(acc[x], y), KEYS[x]


@settings(max_examples=60, deadline=None)
@given(ops)
def test_stf_properties_issuance_equals_sum_of_accounts(
    sequence: list[tuple[str, int, int, int]],
) -> None:
    """Whatever the calls, total issuance equals the sum of all free and reserved balances,
    reserved balances equal the open bids, and every failure is a DispatchError."""
    state = State()
    now = 1_000_000
    for op, x, y, z in sequence:
        if op == "tick":
            now += 1000
            continue
        env = CallEnv(
            BlockNumber(1), Moment(now), SHARD, MRENCLAVE, ENCLAVE.account_id, KEYS[0].account_id
        )
        call, key = _call(op, x, y, z, now)
        if key is None:
            outcome = STF.execute_enclave_call(state, call, env)
        else:
            nonce = account_nonce(state, key.account_id)
            signed = sign_call(STF.codecs, call, Nonce(nonce), MRENCLAVE, SHARD, key)
            outcome = STF.execute_call(state, signed, env)
            assert outcome.accepted
        assert outcome.error is None or isinstance(outcome.error, DispatchError)
        accounts = balances.ACCOUNTS.entries(state)
        assert balances.total_issuance(state) == sum(d.free + d.reserved for _, d in accounts)
    open_bids: dict[bytes, int] = {}
    for auction_id, record in auction.AUCTIONS.entries(state):
        if record.result is None:
            for bidder, bid in auction.BIDS.entries_of(state, auction_id):
                open_bids[bidder] = open_bids.get(bidder, 0) + bid.amount
        else:
            assert auction.BIDS.entries_of(state, auction_id) == []
    reserved = {k: d.reserved for k, d in balances.ACCOUNTS.entries(state) if d.reserved}
    if not any(op == "set" for op, *_ in sequence):  # root may rewrite reserved balances
        assert reserved == open_bids
