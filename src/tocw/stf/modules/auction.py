"""Example application module: sealed-bid second-price auctions (indices 50..59).

Owns the "Auction" namespace: auctions, their sealed bids, and the calls and getters below.
It exists to show why someone would run business logic in a TEE, and how to write an STF
module (docs/writing-an-stf-module.md walks through this file).

Why a TEE: in a second-price (Vickrey) sealed-bid auction, bidding what the item is truly
worth to you is the best strategy, but only if nobody can see the bids before the close: not
the other bidders, not the seller (who could otherwise slip in a bid just under the top one to
raise the price). On a public chain every bid is public, so such auctions need two rounds of
commit and reveal, deposits, and punishment for bidders who never reveal. Here a bid is
encrypted to the shard's shielding key, executed inside the enclave and kept in state that only
the enclave can read: nobody sees a bid, not even the operators of the workers, and the result
is computed by code whose hash (MRENCLAVE) everybody can check.

Rules:
- auction_create(seller, item, reserve_price, end): item is a public description of at most
  MAX_ITEM_LEN bytes; end is parentchain time in ms and must lie after the current block's
  timestamp. Ids count up from 0 in execution order (public getter auction_count).
- auction_bid(bidder, auction_id, amount): only before `end` and before the close; the seller
  cannot bid; amount must be at least the reserve price (and above 0). The amount is reserved
  from the bidder's free balance. A new bid of the same bidder replaces the old one (its
  reserve is released first) and queues behind earlier bids for tie-breaking.
- auction_close(caller, auction_id): anyone, once the parentchain time reached `end`. The
  highest bid wins (ties: the earlier bid); the winner pays the second-highest bid, or the
  reserve price if that is higher or if there was a single bid. Every bid's reserve is released
  and the price moves from the winner to the seller. Losing bids are then deleted, never
  revealed. With no bids the auction closes without a winner.
- Getters: public auction(id) shows seller, item, reserve price, end and, once closed, the
  result (winner, price); nothing about bids, not even their number, while open. Public
  auction_count. Trusted my_bid(who, id): the caller's own current bid, None if none.
- Trusted RPC method `auction_list` (docs/extending-the-rpc-interface.md): a page of the public
  views, so a client can browse auctions in one round trip instead of one getter per id. It
  shows exactly what the public getter shows, nothing more.

What stays visible: the parentchain sees that an account sent some encrypted operation, the
seller and everybody see the public auction data, and after the close the winner and the price
(with second-price rules the price is the second-highest bid, by design). If the root account
rewrites a bidder's balances with balance_set_balance while a bid is open, the close can fail
with InsufficientBalanceError until the funds are restored.

Storage ("Auction" namespace):
    Auction.NextId     u32
    Auction.Auctions   twox64_concat(u32 id) -> Auction
    Auction.Bids       twox64_concat(u32 id) ++ blake2_128_concat(AccountId) -> SealedBid
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from tocw.primitives.hashing import blake2_128_concat, twox64_concat
from tocw.primitives.scale import U32, Bytes, Option, Tuple, Unit, Vec, struct
from tocw.primitives.trusted import ACCOUNT_ID, BALANCE, MOMENT
from tocw.primitives.types import MAX_U32, AccountId, Balance, Moment
from tocw.stf.errors import DispatchError
from tocw.stf.modules.balances import reserve, transfer_free, unreserve
from tocw.stf.state import State, StateView, StorageDoubleMap, StorageMap, StorageValue
from tocw.stf.types import CallContext, CallSpec, Effect, GetterSpec, RpcMethodSpec, StfModule

NAMESPACE = "Auction"
INDICES = range(50, 60)
MAX_ITEM_LEN = 256
LIST_PAGE_SIZE = 64  # auctions per auction_list answer: bounds the work one RPC call can cause


# -- errors -------------------------------------------------------------------------------------


class AuctionError(DispatchError):
    """Root of the auction module's call failures (all DispatchErrors: the nonce stays bumped).

    AuctionError
    ├── InvalidAuctionError    create: end not in the future, item too long, ids exhausted
    ├── AuctionNotFoundError   no auction with that id
    ├── BiddingClosedError     bid at or after the end, or after the close
    ├── SellerBidError         the seller bid on their own auction
    ├── BidTooLowError         bid of 0 or below the reserve price
    ├── AuctionNotEndedError   close before the end
    └── AuctionClosedError     close of an auction already closed
    """


class InvalidAuctionError(AuctionError):
    pass


class AuctionNotFoundError(AuctionError):
    pass


class BiddingClosedError(AuctionError):
    pass


class SellerBidError(AuctionError):
    pass


class BidTooLowError(AuctionError):
    pass


class AuctionNotEndedError(AuctionError):
    pass


class AuctionClosedError(AuctionError):
    pass


# -- calls (TrustedCall 50..52) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuctionCreate:
    seller: AccountId
    item: bytes
    reserve_price: Balance
    end: Moment

    @property
    def signer(self) -> AccountId:
        return self.seller


@dataclass(frozen=True, slots=True)
class AuctionBid:
    bidder: AccountId
    auction_id: int
    amount: Balance

    @property
    def signer(self) -> AccountId:
        return self.bidder


@dataclass(frozen=True, slots=True)
class AuctionClose:
    caller: AccountId
    auction_id: int

    @property
    def signer(self) -> AccountId:
        return self.caller


# -- getters (PublicGetter 50..51, TrustedGetter 50) --------------------------------------------


@dataclass(frozen=True, slots=True)
class AuctionDetails:
    """PublicGetter::auction(id) -> Option<AuctionView>."""

    auction_id: int


@dataclass(frozen=True, slots=True)
class AuctionCount:
    """PublicGetter::auction_count -> u32: the number of auctions created, the next id."""


@dataclass(frozen=True, slots=True)
class AuctionMyBid:
    """TrustedGetter::auction_my_bid(who, id) -> Option<Balance>, signed by `who`."""

    who: AccountId
    auction_id: int

    @property
    def signer(self) -> AccountId:
        return self.who


# -- state and answers --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuctionResult:
    winner: AccountId | None
    price: Balance


@dataclass(frozen=True, slots=True)
class Auction:
    """Stored auction. `bids_placed` orders bids for tie-breaking and is never shown."""

    seller: AccountId
    item: bytes
    reserve_price: Balance
    end: Moment
    bids_placed: int
    result: AuctionResult | None


@dataclass(frozen=True, slots=True)
class AuctionView:
    """What the public getter shows: `result` is None while the auction is open."""

    seller: AccountId
    item: bytes
    reserve_price: Balance
    end: Moment
    result: AuctionResult | None


@dataclass(frozen=True, slots=True)
class SealedBid:
    amount: Balance
    seq: int


AUCTION_RESULT = struct(AuctionResult, winner=Option(ACCOUNT_ID), price=BALANCE)
AUCTION = struct(
    Auction,
    seller=ACCOUNT_ID,
    item=Bytes,
    reserve_price=BALANCE,
    end=MOMENT,
    bids_placed=U32,
    result=Option(AUCTION_RESULT),
)
AUCTION_VIEW = struct(
    AuctionView,
    seller=ACCOUNT_ID,
    item=Bytes,
    reserve_price=BALANCE,
    end=MOMENT,
    result=Option(AUCTION_RESULT),
)
SEALED_BID = struct(SealedBid, amount=BALANCE, seq=U32)

NEXT_ID: StorageValue[int] = StorageValue(NAMESPACE, "NextId", U32)
AUCTIONS: StorageMap[int, Auction] = StorageMap(NAMESPACE, "Auctions", twox64_concat, U32, AUCTION)
BIDS: StorageDoubleMap[int, AccountId, SealedBid] = StorageDoubleMap(
    NAMESPACE, "Bids", twox64_concat, U32, blake2_128_concat, ACCOUNT_ID, SEALED_BID
)


def load_auction(state: StateView, auction_id: int) -> Auction:
    auction = AUCTIONS.get(state, auction_id)
    if auction is None:
        raise AuctionNotFoundError(f"no auction {auction_id}")
    return auction


def settle(bids: Sequence[tuple[AccountId, SealedBid]], reserve_price: Balance) -> AuctionResult:
    """Second-price rule: the highest bid wins (ties: lower seq) and pays the second-highest
    bid, at least the reserve price. Pure, so it can be tested on its own."""
    if not bids:
        return AuctionResult(None, Balance(0))
    ranked = sorted(bids, key=lambda b: (-b[1].amount, b[1].seq))
    runner_up = ranked[1][1].amount if len(ranked) > 1 else 0
    return AuctionResult(ranked[0][0], Balance(max(runner_up, reserve_price)))


# -- apply functions ----------------------------------------------------------------------------


def apply_create(state: State, call: AuctionCreate, ctx: CallContext) -> Sequence[Effect]:
    if len(call.item) > MAX_ITEM_LEN:
        raise InvalidAuctionError(f"item description longer than {MAX_ITEM_LEN} bytes")
    if call.end <= ctx.env.timestamp:
        raise InvalidAuctionError(
            f"end {call.end} is not after the parentchain time {ctx.env.timestamp}"
        )
    auction_id = NEXT_ID.get_or(state, 0)
    if auction_id >= MAX_U32:
        raise InvalidAuctionError("auction ids exhausted")
    AUCTIONS.put(
        state, auction_id, Auction(call.seller, call.item, call.reserve_price, call.end, 0, None)
    )
    NEXT_ID.put(state, auction_id + 1)
    return ()


def apply_bid(state: State, call: AuctionBid, ctx: CallContext) -> Sequence[Effect]:
    auction = load_auction(state, call.auction_id)
    if auction.result is not None or ctx.env.timestamp >= auction.end:
        raise BiddingClosedError(f"auction {call.auction_id} takes no more bids")
    if call.bidder == auction.seller:
        raise SellerBidError("the seller cannot bid on their own auction")
    if call.amount == 0 or call.amount < auction.reserve_price:
        raise BidTooLowError(f"bid {call.amount} is below the reserve price")
    if auction.bids_placed >= MAX_U32:
        raise BiddingClosedError(f"auction {call.auction_id} has taken all the bids it can")
    previous = BIDS.get(state, call.auction_id, call.bidder)
    if previous is not None:
        unreserve(state, call.bidder, previous.amount)
    reserve(state, call.bidder, call.amount)
    BIDS.put(state, call.auction_id, call.bidder, SealedBid(call.amount, auction.bids_placed))
    AUCTIONS.put(state, call.auction_id, replace(auction, bids_placed=auction.bids_placed + 1))
    return ()


def apply_close(state: State, call: AuctionClose, ctx: CallContext) -> Sequence[Effect]:
    auction = load_auction(state, call.auction_id)
    if auction.result is not None:
        raise AuctionClosedError(f"auction {call.auction_id} is already closed")
    if ctx.env.timestamp < auction.end:
        raise AuctionNotEndedError(
            f"auction {call.auction_id} ends at {auction.end}, now is {ctx.env.timestamp}"
        )
    bids = BIDS.entries_of(state, call.auction_id)
    result = settle(bids, auction.reserve_price)
    for bidder, bid in bids:
        unreserve(state, bidder, bid.amount)
    if result.winner is not None:
        transfer_free(state, result.winner, auction.seller, result.price)
    BIDS.clear_prefix(state, call.auction_id)
    AUCTIONS.put(state, call.auction_id, replace(auction, result=result))
    return ()


# -- getters ------------------------------------------------------------------------------------


def _view(auction: Auction) -> AuctionView:
    return AuctionView(
        auction.seller, auction.item, auction.reserve_price, auction.end, auction.result
    )


def get_auction(state: StateView, getter: AuctionDetails) -> bytes | None:
    auction = AUCTIONS.get(state, getter.auction_id)
    if auction is None:
        return None
    return AUCTION_VIEW.encode(_view(auction))


def get_auction_count(state: StateView, getter: AuctionCount) -> bytes:
    return U32.encode(NEXT_ID.get_or(state, 0))


def get_my_bid(state: StateView, getter: AuctionMyBid) -> bytes | None:
    bid = BIDS.get(state, getter.auction_id, getter.who)
    return None if bid is None else BALANCE.encode(bid.amount)


# -- trusted RPC methods ------------------------------------------------------------------------

AUCTION_PAGE = Vec(Tuple(U32, AUCTION_VIEW))


def list_auctions(state: StateView, params: Sequence[bytes]) -> bytes:
    """auction_list([SCALE(u32 first_id)]) -> SCALE(Vec<(u32, AuctionView)>).

    Up to LIST_PAGE_SIZE auctions with id >= first_id (default 0), in id order; ask again from
    the last id + 1 for the next page, an empty list means the end. Ids are dense, so a page
    costs LIST_PAGE_SIZE reads whatever the number of auctions.
    """
    if len(params) > 1:
        raise ValueError(f"auction_list takes at most one parameter (first id), got {len(params)}")
    first = U32.decode(params[0]) if params else 0
    end = min(NEXT_ID.get_or(state, 0), first + LIST_PAGE_SIZE)
    page = []
    for auction_id in range(first, end):
        auction = AUCTIONS.get(state, auction_id)
        if auction is not None:
            page.append((auction_id, _view(auction)))
    return AUCTION_PAGE.encode(page)


MODULE = StfModule(
    name="auction",
    indices=INDICES,
    calls=(
        CallSpec(
            50,
            struct(AuctionCreate, seller=ACCOUNT_ID, item=Bytes, reserve_price=BALANCE, end=MOMENT),
            apply_create,
        ),
        CallSpec(
            51, struct(AuctionBid, bidder=ACCOUNT_ID, auction_id=U32, amount=BALANCE), apply_bid
        ),
        CallSpec(52, struct(AuctionClose, caller=ACCOUNT_ID, auction_id=U32), apply_close),
    ),
    public_getters=(
        GetterSpec(50, struct(AuctionDetails, auction_id=U32), get_auction),
        GetterSpec(51, Unit(AuctionCount), get_auction_count),
    ),
    trusted_getters=(
        GetterSpec(50, struct(AuctionMyBid, who=ACCOUNT_ID, auction_id=U32), get_my_bid),
    ),
    namespaces=(NAMESPACE,),
    requires=("balances",),
    source_files=(Path(__file__),),
    rpc_methods=(RpcMethodSpec("auction_list", list_auctions),),
)
