"""Pre/op/post vectors for every call and getter of the balances and auction modules.

Each call vector gives a pre-state, one operation (a client-signed call or an enclave call),
the expected outcome (accepted, error type, effects) and the exact post-state: every key of the
state afterwards, not a few spot checks. States are built with the modules' own storage
declarations; test_stf_vectors_key_layout_is_pinned pins those to raw Substrate keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from tocw.primitives.keys import EcdsaSignature, Keypair, KeyScheme, MultiSignature
from tocw.primitives.scale import U32
from tocw.primitives.trusted import (
    BALANCE,
    BalanceSetBalance,
    BalanceShield,
    BalanceTransfer,
    BalanceUnshield,
    FreeBalance,
    NonceGetter,
    Noop,
    ParentchainId,
    PublicGetterOp,
    ReservedBalance,
    SomeValue,
    TimestampSet,
    TrustedCallSigned,
    TrustedGetterOp,
    sign_call,
    sign_getter,
)
from tocw.primitives.types import (
    MAX_U32,
    MAX_U128,
    AccountId,
    Balance,
    BlockNumber,
    Moment,
    MrEnclave,
    Nonce,
    ShardId,
)
from tocw.stf import errors
from tocw.stf.errors import (
    BadOriginError,
    BalanceOverflowError,
    InsufficientBalanceError,
    InvalidSignatureError,
    InvalidTimestampError,
    NonceExhaustedError,
    NonceMismatchError,
    StfError,
    WrongShardError,
)
from tocw.stf.modules import auction, balances
from tocw.stf.modules.auction import (
    AUCTION_VIEW,
    Auction,
    AuctionBid,
    AuctionClose,
    AuctionClosedError,
    AuctionCount,
    AuctionCreate,
    AuctionDetails,
    AuctionMyBid,
    AuctionNotEndedError,
    AuctionNotFoundError,
    AuctionResult,
    AuctionView,
    BiddingClosedError,
    BidTooLowError,
    InvalidAuctionError,
    SealedBid,
    SellerBidError,
)
from tocw.stf.registry import build_stf
from tocw.stf.state import State
from tocw.stf.system import ACCOUNT_NONCE, account_nonce
from tocw.stf.types import CallEnv

ALICE = Keypair.from_uri("//Alice")  # the shard's root in ENV
BOB = Keypair.from_uri("//Bob")
CHARLIE = Keypair.from_uri("//Charlie")
DAVE = Keypair.from_uri("//Dave")
EVE = Keypair.from_uri("//Eve", KeyScheme.ED25519)
ENCLAVE = Keypair.from_uri("//Enclave", KeyScheme.ED25519)
A, B, C, D, E = (k.account_id for k in (ALICE, BOB, CHARLIE, DAVE, EVE))
ENC = ENCLAVE.account_id

SHARD = ShardId(b"\x5a" * 32)
OTHER_SHARD = ShardId(b"\x01" * 32)
MRENCLAVE = MrEnclave(b"\xa5" * 32)
NOW = 1_700_000_000_000
END = NOW + 60_000
ENV = CallEnv(BlockNumber(7), Moment(NOW), SHARD, MRENCLAVE, ENC, A)
AT_END = dataclasses.replace(ENV, timestamp=Moment(END))
BOB_IS_ROOT = dataclasses.replace(ENV, root_account=B)

INT = ParentchainId.INTEGRITEE
TA = ParentchainId.TARGET_A

STF = build_stf(["balances", "auction"])

Funds = int | tuple[int, int]


def pre(
    *,
    accounts: Mapping[AccountId, Funds] | None = None,
    nonces: Mapping[AccountId, int] | None = None,
    issuance: int | None = None,
    now: Mapping[ParentchainId, int] | None = None,
    auctions: Mapping[int, Auction] | None = None,
    bids: Mapping[tuple[int, AccountId], tuple[int, int]] | None = None,
    next_id: int | None = None,
) -> dict[bytes, bytes]:
    """A state as raw items. The issuance defaults to the sum of the accounts' balances (and is
    absent if there are no accounts); pass it to state something else."""
    s = State()
    total = 0
    for who, funds in (accounts or {}).items():
        free, reserved = (funds, 0) if isinstance(funds, int) else funds
        total += free + reserved
        balances.ACCOUNTS.put(s, who, balances.AccountData(Balance(free), Balance(reserved)))
    if issuance is not None or accounts:
        balances.TOTAL_ISSUANCE.put(s, Balance(total if issuance is None else issuance))
    for who, nonce in (nonces or {}).items():
        ACCOUNT_NONCE.put(s, who, Nonce(nonce))
    for chain, moment in (now or {}).items():
        balances.NOW.put(s, chain, Moment(moment))
    for auction_id, record in (auctions or {}).items():
        auction.AUCTIONS.put(s, auction_id, record)
    for (auction_id, who), (amount, seq) in (bids or {}).items():
        auction.BIDS.put(s, auction_id, who, SealedBid(Balance(amount), seq))
    if next_id is not None:
        auction.NEXT_ID.put(s, next_id)
    return dict(s.items())


@dataclass(frozen=True)
class Signed:
    """A client call signed by `by` (not necessarily the call's signer: that is a test too)."""

    call: Any
    by: Keypair
    nonce: int | None = None  # None: the signer's nonce in the pre-state
    shard: bytes | None = None  # sign for another shard than the env's
    mrenclave: bytes | None = None
    signature: MultiSignature | None = None  # replace the signature


@dataclass(frozen=True)
class FromEnclave:
    call: Any


@dataclass(frozen=True)
class CallVector:
    name: str
    pre: dict[bytes, bytes]
    op: Signed | FromEnclave
    accepted: bool
    error: type[StfError] | None
    post: dict[bytes, bytes] | None  # None: exactly the pre-state
    effects: tuple[tuple[ShardId, AccountId, int], ...] = ()
    env: CallEnv = ENV


@dataclass(frozen=True)
class GetterVector:
    name: str
    pre: dict[bytes, bytes]
    getter: Any
    by: Keypair | None  # None: a public getter
    result: bytes | None = None
    error: type[StfError] | None = None


def ok(
    name: str,
    pre_: dict[bytes, bytes],
    op: Signed | FromEnclave,
    post: dict[bytes, bytes],
    **kw: Any,
) -> CallVector:
    return CallVector(name, pre_, op, True, None, post, **kw)


def fails(
    name: str,
    pre_: dict[bytes, bytes],
    op: Signed | FromEnclave,
    error: type[StfError],
    post: dict[bytes, bytes] | None,
    **kw: Any,
) -> CallVector:
    """Accepted (nonce bumped for client calls), then failed: post is pre plus the bump."""
    return CallVector(name, pre_, op, True, error, post, **kw)


def rejected(name: str, pre_: dict[bytes, bytes], op: Signed, error: type[StfError]) -> CallVector:
    return CallVector(name, pre_, op, False, error, None)


OPEN = Auction(C, b"lamp", Balance(10), Moment(END), 0, None)


def bidded(n: int, **kw: Any) -> Auction:
    return dataclasses.replace(OPEN, bids_placed=n, **kw)


BALANCES_CALLS = [
    # -- executor rules, shown with noop ---------------------------------------------------------
    ok("noop", pre(), Signed(Noop(B), BOB), pre(nonces={B: 1})),
    ok("noop_existing_nonce", pre(nonces={B: 5}), Signed(Noop(B), BOB), pre(nonces={B: 6})),
    ok("noop_ed25519_signer", pre(), Signed(Noop(E), EVE), pre(nonces={E: 1})),
    rejected(
        "reject_signed_by_other_account", pre(), Signed(Noop(B), CHARLIE), InvalidSignatureError
    ),
    rejected(
        "reject_signed_for_other_shard",
        pre(),
        Signed(Noop(B), BOB, shard=OTHER_SHARD),
        InvalidSignatureError,
    ),
    rejected(
        "reject_signed_for_other_mrenclave",
        pre(),
        Signed(Noop(B), BOB, mrenclave=b"\x00" * 32),
        InvalidSignatureError,
    ),
    rejected(
        "reject_ecdsa_signature",
        pre(),
        Signed(Noop(B), BOB, signature=EcdsaSignature(bytes(65))),
        InvalidSignatureError,
    ),
    rejected(
        "reject_nonce_too_high",
        pre(nonces={B: 1}),
        Signed(Noop(B), BOB, nonce=2),
        NonceMismatchError,
    ),
    rejected(
        "reject_nonce_too_low",
        pre(nonces={B: 3}),
        Signed(Noop(B), BOB, nonce=2),
        NonceMismatchError,
    ),
    rejected(
        "reject_nonce_exhausted",
        pre(nonces={B: MAX_U32}),
        Signed(Noop(B), BOB),
        NonceExhaustedError,
    ),
    # -- balance_set_balance ---------------------------------------------------------------------
    ok(
        "set_balance_new_account",
        pre(),
        Signed(BalanceSetBalance(A, B, Balance(100), Balance(5)), ALICE),
        pre(accounts={B: (100, 5)}, nonces={A: 1}),
    ),
    ok(
        "set_balance_lowers_existing",
        pre(accounts={B: (100, 5), C: 50}),
        Signed(BalanceSetBalance(A, B, Balance(10), Balance(0)), ALICE),
        pre(accounts={B: 10, C: 50}, nonces={A: 1}),
    ),
    ok(
        "set_balance_zero_removes_account",
        pre(accounts={B: (100, 5)}),
        Signed(BalanceSetBalance(A, B, Balance(0), Balance(0)), ALICE),
        pre(nonces={A: 1}, issuance=0),
    ),
    ok(
        "set_balance_root_comes_from_env",
        pre(),
        Signed(BalanceSetBalance(B, C, Balance(7), Balance(0)), BOB),
        pre(accounts={C: 7}, nonces={B: 1}),
        env=BOB_IS_ROOT,
    ),
    fails(
        "set_balance_not_root",
        pre(accounts={C: 10}),
        Signed(BalanceSetBalance(B, C, Balance(1000), Balance(0)), BOB),
        BadOriginError,
        pre(accounts={C: 10}, nonces={B: 1}),
    ),
    fails(
        "set_balance_alice_not_root_on_other_shard_config",
        pre(),
        Signed(BalanceSetBalance(A, C, Balance(1), Balance(0)), ALICE),
        BadOriginError,
        pre(nonces={A: 1}),
        env=BOB_IS_ROOT,
    ),
    fails(
        "set_balance_issuance_overflow",
        pre(accounts={C: MAX_U128 - 10}),
        Signed(BalanceSetBalance(A, B, Balance(11), Balance(0)), ALICE),
        BalanceOverflowError,
        pre(accounts={C: MAX_U128 - 10}, nonces={A: 1}),
    ),
    fails(
        "set_balance_free_plus_reserved_overflow",
        pre(),
        Signed(BalanceSetBalance(A, B, Balance(MAX_U128), Balance(1)), ALICE),
        BalanceOverflowError,
        pre(nonces={A: 1}),
    ),
    # -- balance_transfer ------------------------------------------------------------------------
    ok(
        "transfer",
        pre(accounts={A: 100}),
        Signed(BalanceTransfer(A, B, Balance(30)), ALICE),
        pre(accounts={A: 70, B: 30}, nonces={A: 1}),
    ),
    ok(
        "transfer_whole_balance_removes_sender",
        pre(accounts={A: 100}),
        Signed(BalanceTransfer(A, B, Balance(100)), ALICE),
        pre(accounts={B: 100}, nonces={A: 1}),
    ),
    ok(
        "transfer_leaves_reserved",
        pre(accounts={A: (100, 7)}),
        Signed(BalanceTransfer(A, B, Balance(100)), ALICE),
        pre(accounts={A: (0, 7), B: 100}, nonces={A: 1}),
    ),
    ok(
        "transfer_to_self_changes_nothing",
        pre(accounts={A: 10}),
        Signed(BalanceTransfer(A, A, Balance(5)), ALICE),
        pre(accounts={A: 10}, nonces={A: 1}),
    ),
    ok(
        "transfer_zero_from_empty_account",
        pre(),
        Signed(BalanceTransfer(B, C, Balance(0)), BOB),
        pre(nonces={B: 1}),
    ),
    fails(
        "transfer_insufficient",
        pre(accounts={A: 10}),
        Signed(BalanceTransfer(A, B, Balance(11)), ALICE),
        InsufficientBalanceError,
        pre(accounts={A: 10}, nonces={A: 1}),
    ),
    fails(
        "transfer_reserved_is_not_spendable",
        pre(accounts={A: (10, 100)}),
        Signed(BalanceTransfer(A, B, Balance(20)), ALICE),
        InsufficientBalanceError,
        pre(accounts={A: (10, 100)}, nonces={A: 1}),
    ),
    fails(
        "transfer_recipient_overflow",
        pre(accounts={A: 1, B: MAX_U128}, issuance=MAX_U128),
        Signed(BalanceTransfer(A, B, Balance(1)), ALICE),
        BalanceOverflowError,
        pre(accounts={A: 1, B: MAX_U128}, issuance=MAX_U128, nonces={A: 1}),
    ),
    # -- balance_unshield ------------------------------------------------------------------------
    ok(
        "unshield",
        pre(accounts={B: 100}),
        Signed(BalanceUnshield(B, D, Balance(40), SHARD), BOB),
        pre(accounts={B: 60}, nonces={B: 1}),
        effects=((SHARD, D, 40),),
    ),
    ok(
        "unshield_everything",
        pre(accounts={B: 40, C: 1}),
        Signed(BalanceUnshield(B, B, Balance(40), SHARD), BOB),
        pre(accounts={C: 1}, nonces={B: 1}),
        effects=((SHARD, B, 40),),
    ),
    fails(
        "unshield_insufficient",
        pre(accounts={B: 10}),
        Signed(BalanceUnshield(B, D, Balance(11), SHARD), BOB),
        InsufficientBalanceError,
        pre(accounts={B: 10}, nonces={B: 1}),
    ),
    fails(
        "unshield_wrong_shard",
        pre(accounts={B: 10}),
        Signed(BalanceUnshield(B, D, Balance(5), OTHER_SHARD), BOB),
        WrongShardError,
        pre(accounts={B: 10}, nonces={B: 1}),
    ),
    # -- balance_shield (enclave only) -----------------------------------------------------------
    ok(
        "shield",
        pre(accounts={B: 5}),
        FromEnclave(BalanceShield(ENC, B, Balance(50), INT)),
        pre(accounts={B: 55}),
    ),
    ok(
        "shield_new_account",
        pre(),
        FromEnclave(BalanceShield(ENC, B, Balance(50), TA)),
        pre(accounts={B: 50}),
    ),
    fails(
        "shield_names_other_enclave_account",
        pre(),
        FromEnclave(BalanceShield(C, B, Balance(50), INT)),
        BadOriginError,
        None,
    ),
    fails(
        "shield_issuance_overflow",
        pre(accounts={C: MAX_U128}),
        FromEnclave(BalanceShield(ENC, B, Balance(1), INT)),
        BalanceOverflowError,
        None,
    ),
    fails(
        "shield_from_client",
        pre(),
        Signed(BalanceShield(B, B, Balance(1000), INT), BOB),
        BadOriginError,
        pre(nonces={B: 1}),
    ),
    fails(
        "shield_from_client_with_enclave_key",
        pre(),
        Signed(BalanceShield(ENC, B, Balance(1000), INT), ENCLAVE),
        BadOriginError,
        pre(nonces={ENC: 1}),
    ),
    # -- timestamp_set (enclave only) ------------------------------------------------------------
    ok(
        "timestamp_set_first",
        pre(),
        FromEnclave(TimestampSet(ENC, Moment(1000), INT)),
        pre(now={INT: 1000}),
    ),
    ok(
        "timestamp_set_later",
        pre(now={INT: 1000}),
        FromEnclave(TimestampSet(ENC, Moment(2000), INT)),
        pre(now={INT: 2000}),
    ),
    ok(
        "timestamp_set_equal",
        pre(now={INT: 1000}),
        FromEnclave(TimestampSet(ENC, Moment(1000), INT)),
        pre(now={INT: 1000}),
    ),
    ok(
        "timestamp_set_per_parentchain",
        pre(now={INT: 1000}),
        FromEnclave(TimestampSet(ENC, Moment(5), TA)),
        pre(now={INT: 1000, TA: 5}),
    ),
    fails(
        "timestamp_set_backwards",
        pre(now={INT: 1000}),
        FromEnclave(TimestampSet(ENC, Moment(999), INT)),
        InvalidTimestampError,
        None,
    ),
    fails(
        "timestamp_set_names_other_enclave_account",
        pre(),
        FromEnclave(TimestampSet(C, Moment(1), INT)),
        BadOriginError,
        None,
    ),
    fails(
        "timestamp_set_from_client",
        pre(),
        Signed(TimestampSet(B, Moment(1), INT), BOB),
        BadOriginError,
        pre(nonces={B: 1}),
    ),
]

AUCTION_CALLS = [
    # -- auction_create --------------------------------------------------------------------------
    ok(
        "auction_create",
        pre(),
        Signed(AuctionCreate(C, b"lamp", Balance(10), Moment(END)), CHARLIE),
        pre(nonces={C: 1}, auctions={0: OPEN}, next_id=1),
    ),
    ok(
        "auction_create_takes_next_id",
        pre(auctions={0: OPEN}, next_id=1),
        Signed(AuctionCreate(B, b"x" * 256, Balance(0), Moment(NOW + 1)), BOB),
        pre(
            nonces={B: 1},
            next_id=2,
            auctions={0: OPEN, 1: Auction(B, b"x" * 256, Balance(0), Moment(NOW + 1), 0, None)},
        ),
    ),
    fails(
        "auction_create_end_not_in_future",
        pre(),
        Signed(AuctionCreate(C, b"lamp", Balance(10), Moment(NOW)), CHARLIE),
        InvalidAuctionError,
        pre(nonces={C: 1}),
    ),
    fails(
        "auction_create_item_too_long",
        pre(),
        Signed(AuctionCreate(C, b"x" * 257, Balance(10), Moment(END)), CHARLIE),
        InvalidAuctionError,
        pre(nonces={C: 1}),
    ),
    fails(
        "auction_create_ids_exhausted",
        pre(next_id=MAX_U32),
        Signed(AuctionCreate(C, b"lamp", Balance(10), Moment(END)), CHARLIE),
        InvalidAuctionError,
        pre(nonces={C: 1}, next_id=MAX_U32),
    ),
    # -- auction_bid -----------------------------------------------------------------------------
    ok(
        "auction_bid_reserves",
        pre(accounts={B: 100}, auctions={0: OPEN}),
        Signed(AuctionBid(B, 0, Balance(30)), BOB),
        pre(accounts={B: (70, 30)}, nonces={B: 1}, auctions={0: bidded(1)}, bids={(0, B): (30, 0)}),
    ),
    ok(
        "auction_bid_at_reserve_price",
        pre(accounts={B: 100}, auctions={0: OPEN}),
        Signed(AuctionBid(B, 0, Balance(10)), BOB),
        pre(accounts={B: (90, 10)}, nonces={B: 1}, auctions={0: bidded(1)}, bids={(0, B): (10, 0)}),
    ),
    ok(
        "auction_rebid_higher_replaces",
        pre(accounts={B: (70, 30)}, nonces={B: 1}, auctions={0: bidded(1)}, bids={(0, B): (30, 0)}),
        Signed(AuctionBid(B, 0, Balance(50)), BOB),
        pre(accounts={B: (50, 50)}, nonces={B: 2}, auctions={0: bidded(2)}, bids={(0, B): (50, 1)}),
    ),
    ok(
        "auction_rebid_lower_replaces",
        pre(accounts={B: (70, 30)}, nonces={B: 1}, auctions={0: bidded(1)}, bids={(0, B): (30, 0)}),
        Signed(AuctionBid(B, 0, Balance(20)), BOB),
        pre(accounts={B: (80, 20)}, nonces={B: 2}, auctions={0: bidded(2)}, bids={(0, B): (20, 1)}),
    ),
    fails(
        "auction_rebid_insufficient_keeps_old_bid",
        pre(accounts={B: (70, 30)}, nonces={B: 1}, auctions={0: bidded(1)}, bids={(0, B): (30, 0)}),
        Signed(AuctionBid(B, 0, Balance(101)), BOB),
        InsufficientBalanceError,
        pre(accounts={B: (70, 30)}, nonces={B: 2}, auctions={0: bidded(1)}, bids={(0, B): (30, 0)}),
    ),
    fails(
        "auction_bid_insufficient",
        pre(accounts={B: 5}, auctions={0: OPEN}),
        Signed(AuctionBid(B, 0, Balance(30)), BOB),
        InsufficientBalanceError,
        pre(accounts={B: 5}, nonces={B: 1}, auctions={0: OPEN}),
    ),
    fails(
        "auction_bid_unknown_auction",
        pre(accounts={B: 100}),
        Signed(AuctionBid(B, 9, Balance(30)), BOB),
        AuctionNotFoundError,
        pre(accounts={B: 100}, nonces={B: 1}),
    ),
    fails(
        "auction_bid_at_end",
        pre(accounts={B: 100}, auctions={0: OPEN}),
        Signed(AuctionBid(B, 0, Balance(30)), BOB),
        BiddingClosedError,
        pre(accounts={B: 100}, nonces={B: 1}, auctions={0: OPEN}),
        env=AT_END,
    ),
    fails(
        "auction_bid_after_close",
        pre(accounts={B: 100}, auctions={0: bidded(0, result=AuctionResult(None, Balance(0)))}),
        Signed(AuctionBid(B, 0, Balance(30)), BOB),
        BiddingClosedError,
        pre(
            accounts={B: 100},
            nonces={B: 1},
            auctions={0: bidded(0, result=AuctionResult(None, Balance(0)))},
        ),
    ),
    fails(
        "auction_bid_by_seller",
        pre(accounts={C: 100}, auctions={0: OPEN}),
        Signed(AuctionBid(C, 0, Balance(30)), CHARLIE),
        SellerBidError,
        pre(accounts={C: 100}, nonces={C: 1}, auctions={0: OPEN}),
    ),
    fails(
        "auction_bid_zero",
        pre(accounts={B: 100}, auctions={0: bidded(0, reserve_price=Balance(0))}),
        Signed(AuctionBid(B, 0, Balance(0)), BOB),
        BidTooLowError,
        pre(accounts={B: 100}, nonces={B: 1}, auctions={0: bidded(0, reserve_price=Balance(0))}),
    ),
    fails(
        "auction_bid_below_reserve",
        pre(accounts={B: 100}, auctions={0: OPEN}),
        Signed(AuctionBid(B, 0, Balance(9)), BOB),
        BidTooLowError,
        pre(accounts={B: 100}, nonces={B: 1}, auctions={0: OPEN}),
    ),
    fails(
        "auction_bid_count_exhausted",
        pre(accounts={B: 100}, auctions={0: bidded(MAX_U32)}),
        Signed(AuctionBid(B, 0, Balance(30)), BOB),
        BiddingClosedError,
        pre(accounts={B: 100}, nonces={B: 1}, auctions={0: bidded(MAX_U32)}),
    ),
    # -- auction_close ---------------------------------------------------------------------------
    ok(
        "auction_close_without_bids",
        pre(auctions={0: OPEN}),
        Signed(AuctionClose(D, 0), DAVE),
        pre(nonces={D: 1}, auctions={0: bidded(0, result=AuctionResult(None, Balance(0)))}),
        env=AT_END,
    ),
    ok(
        "auction_close_single_bid_pays_reserve",
        pre(accounts={B: (70, 30)}, auctions={0: bidded(1)}, bids={(0, B): (30, 0)}),
        Signed(AuctionClose(C, 0), CHARLIE),
        pre(
            accounts={B: 90, C: 10},
            nonces={C: 1},
            auctions={0: bidded(1, result=AuctionResult(B, Balance(10)))},
        ),
        env=AT_END,
    ),
    ok(
        "auction_close_second_price_by_third_party",
        pre(
            accounts={B: (70, 30), D: (0, 50), E: (5, 45)},
            auctions={0: bidded(3)},
            bids={(0, B): (30, 0), (0, D): (50, 1), (0, E): (45, 2)},
        ),
        Signed(AuctionClose(A, 0), ALICE),
        pre(
            accounts={B: 100, D: 5, E: 50, C: 45},
            nonces={A: 1},
            auctions={0: bidded(3, result=AuctionResult(D, Balance(45)))},
        ),
        env=AT_END,
    ),
    ok(
        "auction_close_tie_goes_to_earlier_bid",
        pre(
            accounts={B: (0, 50), D: (0, 50)},
            auctions={0: bidded(3)},
            bids={(0, B): (50, 2), (0, D): (50, 1)},
        ),
        Signed(AuctionClose(C, 0), CHARLIE),
        pre(
            accounts={B: 50, C: 50},
            nonces={C: 1},
            auctions={0: bidded(3, result=AuctionResult(D, Balance(50)))},
        ),
        env=AT_END,
    ),
    fails(
        "auction_close_before_end",
        pre(accounts={B: (70, 30)}, auctions={0: bidded(1)}, bids={(0, B): (30, 0)}),
        Signed(AuctionClose(C, 0), CHARLIE),
        AuctionNotEndedError,
        pre(accounts={B: (70, 30)}, nonces={C: 1}, auctions={0: bidded(1)}, bids={(0, B): (30, 0)}),
    ),
    fails(
        "auction_close_twice",
        pre(auctions={0: bidded(0, result=AuctionResult(None, Balance(0)))}),
        Signed(AuctionClose(C, 0), CHARLIE),
        AuctionClosedError,
        pre(nonces={C: 1}, auctions={0: bidded(0, result=AuctionResult(None, Balance(0)))}),
        env=AT_END,
    ),
    fails(
        "auction_close_unknown_auction",
        pre(),
        Signed(AuctionClose(C, 3), CHARLIE),
        AuctionNotFoundError,
        pre(nonces={C: 1}),
        env=AT_END,
    ),
    fails(
        "auction_close_bidder_funds_taken_by_root",
        pre(accounts={B: (70, 0)}, auctions={0: bidded(1)}, bids={(0, B): (30, 0)}),
        Signed(AuctionClose(C, 0), CHARLIE),
        InsufficientBalanceError,
        pre(accounts={B: (70, 0)}, nonces={C: 1}, auctions={0: bidded(1)}, bids={(0, B): (30, 0)}),
        env=AT_END,
    ),
]

CALL_VECTORS = BALANCES_CALLS + AUCTION_CALLS

_VIEW_OPEN = AUCTION_VIEW.encode(AuctionView(C, b"lamp", Balance(10), Moment(END), None))
_CLOSED = bidded(2, result=AuctionResult(D, Balance(12)))
_VIEW_CLOSED = AUCTION_VIEW.encode(
    AuctionView(C, b"lamp", Balance(10), Moment(END), AuctionResult(D, Balance(12)))
)

GETTER_VECTORS = [
    GetterVector(
        "free_balance",
        pre(accounts={B: (100, 5)}),
        FreeBalance(B),
        BOB,
        BALANCE.encode(Balance(100)),
    ),
    GetterVector(
        "free_balance_unknown_account_is_zero",
        pre(),
        FreeBalance(B),
        BOB,
        BALANCE.encode(Balance(0)),
    ),
    GetterVector(
        "free_balance_ed25519",
        pre(accounts={E: 3}),
        FreeBalance(E),
        EVE,
        BALANCE.encode(Balance(3)),
    ),
    GetterVector(
        "free_balance_signed_by_other",
        pre(accounts={B: 1}),
        FreeBalance(B),
        CHARLIE,
        error=InvalidSignatureError,
    ),
    GetterVector(
        "reserved_balance",
        pre(accounts={B: (100, 5)}),
        ReservedBalance(B),
        BOB,
        BALANCE.encode(Balance(5)),
    ),
    GetterVector(
        "reserved_balance_signed_by_other",
        pre(),
        ReservedBalance(B),
        DAVE,
        error=InvalidSignatureError,
    ),
    GetterVector("nonce", pre(nonces={B: 3}), NonceGetter(B), BOB, U32.encode(3)),
    GetterVector("nonce_unknown_account_is_zero", pre(), NonceGetter(B), BOB, U32.encode(0)),
    GetterVector(
        "nonce_signed_by_other", pre(), NonceGetter(B), ALICE, error=InvalidSignatureError
    ),
    GetterVector("some_value", pre(), SomeValue(), None, U32.encode(42)),
    GetterVector(
        "auction_open_hides_bids",
        pre(auctions={0: bidded(2)}, bids={(0, B): (30, 0), (0, D): (40, 1)}),
        AuctionDetails(0),
        None,
        _VIEW_OPEN,
    ),
    GetterVector(
        "auction_closed_shows_result",
        pre(auctions={0: _CLOSED}),
        AuctionDetails(0),
        None,
        _VIEW_CLOSED,
    ),
    GetterVector("auction_unknown", pre(auctions={0: OPEN}), AuctionDetails(1), None, None),
    GetterVector(
        "auction_count",
        pre(auctions={0: OPEN, 1: OPEN}, next_id=2),
        AuctionCount(),
        None,
        U32.encode(2),
    ),
    GetterVector("auction_count_none_yet", pre(), AuctionCount(), None, U32.encode(0)),
    GetterVector(
        "auction_my_bid",
        pre(auctions={0: bidded(1)}, bids={(0, B): (30, 0)}),
        AuctionMyBid(B, 0),
        BOB,
        BALANCE.encode(Balance(30)),
    ),
    GetterVector(
        "auction_my_bid_none",
        pre(auctions={0: bidded(1)}, bids={(0, B): (30, 0)}),
        AuctionMyBid(D, 0),
        DAVE,
        None,
    ),
    GetterVector(
        "auction_my_bid_of_someone_else_refused",
        pre(auctions={0: bidded(1)}, bids={(0, B): (30, 0)}),
        AuctionMyBid(B, 0),
        DAVE,
        error=InvalidSignatureError,
    ),
]


def _sign(op: Signed, pre_state: State, env: CallEnv) -> TrustedCallSigned:
    nonce = op.nonce if op.nonce is not None else account_nonce(pre_state, op.call.signer)
    signed = sign_call(
        STF.codecs,
        op.call,
        Nonce(nonce),
        MrEnclave(op.mrenclave or env.mrenclave),
        ShardId(op.shard or env.shard),
        op.by,
    )
    if op.signature is not None:
        signed = dataclasses.replace(signed, signature=op.signature)
    return signed


@pytest.mark.parametrize("v", CALL_VECTORS, ids=lambda v: v.name)
def test_stf_vectors_call(v: CallVector) -> None:
    """Executing the op on the pre-state gives the expected outcome and exactly the post-state."""
    state = State(v.pre)
    if isinstance(v.op, Signed):
        signed = _sign(v.op, state, v.env)
        outcome = STF.execute_call(state, signed, v.env)
        leaf = STF.call_hash(signed) if v.accepted else None
    else:
        outcome = STF.execute_enclave_call(state, v.op.call, v.env)
        leaf = None
    assert type(outcome.error) is (v.error or type(None)), outcome.error
    assert (outcome.accepted, outcome.success) == (v.accepted, v.error is None)
    assert outcome.call_hash == leaf
    assert [(e.shard, e.beneficiary, e.amount) for e in outcome.effects] == list(v.effects)
    assert all(e.call_hash == leaf for e in outcome.effects)
    assert dict(state.items()) == (v.pre if v.post is None else v.post)
    assert state.depth == 0


@pytest.mark.parametrize("v", GETTER_VECTORS, ids=lambda v: v.name)
def test_stf_vectors_getter(v: GetterVector) -> None:
    """A getter on the pre-state answers exactly `result` (or raises `error`), changing nothing."""
    state = State(v.pre)
    getter: Any = (
        PublicGetterOp(v.getter)
        if v.by is None
        else TrustedGetterOp(sign_getter(STF.codecs, v.getter, v.by))
    )
    # Through the wire format, as the trusted RPC will call it.
    getter = STF.decode_getter(STF.codecs.getter.encode(getter))
    if v.error is not None:
        with pytest.raises(v.error):
            STF.execute_getter(state, getter)
    else:
        assert STF.execute_getter(state, getter) == v.result
    assert dict(state.items()) == v.pre


def _module_errors(module: object) -> set[type[StfError]]:
    return {
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, errors.DispatchError | errors.RejectedOperationError)
        and obj.__module__ == module.__name__  # type: ignore[attr-defined]
        and not any(
            issubclass(other, obj) and other is not obj
            for other in vars(module).values()
            if isinstance(other, type)
        )
    }


def test_stf_vectors_cover_every_call_getter_and_error() -> None:
    """Every call and getter of both modules, and every concrete error, has a vector."""
    called = {type(v.op.call) for v in CALL_VECTORS}
    got = {type(v.getter) for v in GETTER_VECTORS}
    for module in (balances.MODULE, auction.MODULE):
        assert {s.cls for s in module.calls} <= called
        assert {s.cls for s in module.public_getters + module.trusted_getters} <= got
    raised = {v.error for v in CALL_VECTORS} | {v.error for v in GETTER_VECTORS}
    leaf_errors = _module_errors(errors) | _module_errors(auction)
    assert leaf_errors - raised == set()


def test_stf_vectors_key_layout_is_pinned() -> None:
    """State keys are Substrate's layout, built from well-known Substrate prefixes."""
    items = pre(accounts={A: 1}, nonces={A: 2})
    balances_prefix = "c2261276cc9d1f8598ea4b6a74b15c2f"  # twox128("Balances")
    system_prefix = "26aa394eea5630e07c48ae0c9558cef7"  # twox128("System")
    account_item = "b99d880ec681799c0cf30e8886371da9"  # twox128("Account")
    alice_hash = "de1e86a9a8c739864cf3cc5ec2bea59f"  # blake2_128(Alice), as in System.Account
    alice = A.hex()
    assert (
        {k.hex() for k in items}
        == {
            balances_prefix + account_item + alice_hash + alice,
            balances_prefix + "57c875e4cff74148e4628f264b974c80",  # TotalIssuance
            system_prefix + ACCOUNT_NONCE.prefix[16:].hex() + alice_hash + alice,
        }
    )
