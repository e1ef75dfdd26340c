"""The auction module's trusted RPC method `auction_list`: a pure function of (state, params)."""

from __future__ import annotations

import pytest

from tocw.primitives.errors import ScaleDecodeError
from tocw.primitives.scale import U32
from tocw.primitives.types import AccountId, Balance, Moment
from tocw.stf.modules.auction import (
    AUCTION_PAGE,
    AUCTIONS,
    LIST_PAGE_SIZE,
    MODULE,
    NEXT_ID,
    Auction,
    AuctionResult,
    list_auctions,
)
from tocw.stf.modules.balances import MODULE as BALANCES
from tocw.stf.state import State
from tocw.stf.types import RpcMethodSpec

SELLER = AccountId(b"\x01" * 32)
WINNER = AccountId(b"\x02" * 32)


def state_with(count: int) -> State:
    state = State()
    for i in range(count):
        result = AuctionResult(WINNER, Balance(7)) if i == 1 else None
        AUCTIONS.put(
            state, i, Auction(SELLER, f"#{i}".encode(), Balance(i), Moment(1000 + i), 3, result)
        )
    NEXT_ID.put(state, count)
    return state


def test_auction_rpc_declared_by_module() -> None:
    """The module declares auction_list; modules without methods declare none."""
    assert MODULE.rpc_methods == (RpcMethodSpec("auction_list", list_auctions),)
    assert BALANCES.rpc_methods == ()
    assert hash(MODULE) == hash(MODULE)  # declarations stay hashable values


def test_auction_rpc_empty_state_lists_nothing() -> None:
    """No auctions yet: an empty page."""
    assert AUCTION_PAGE.decode(list_auctions(State(), [])) == []


def test_auction_rpc_shows_public_view_only() -> None:
    """Each entry is (id, AuctionView): public data and the result, never the bid count."""
    page = AUCTION_PAGE.decode(list_auctions(state_with(2), []))
    assert [i for i, _ in page] == [0, 1]
    first, second = page[0][1], page[1][1]
    assert (first.seller, first.item, first.reserve_price, first.end) == (SELLER, b"#0", 0, 1000)
    assert first.result is None
    assert second.result == AuctionResult(WINNER, Balance(7))
    assert not hasattr(first, "bids_placed")


def test_auction_rpc_pages_by_first_id() -> None:
    """Pages hold at most LIST_PAGE_SIZE auctions and continue from the given first id."""
    state = state_with(LIST_PAGE_SIZE + 6)
    first = AUCTION_PAGE.decode(list_auctions(state, []))
    assert [i for i, _ in first] == list(range(LIST_PAGE_SIZE))
    rest = AUCTION_PAGE.decode(list_auctions(state, [U32.encode(LIST_PAGE_SIZE)]))
    assert [i for i, _ in rest] == list(range(LIST_PAGE_SIZE, LIST_PAGE_SIZE + 6))
    assert AUCTION_PAGE.decode(list_auctions(state, [U32.encode(10**6)])) == []


def test_auction_rpc_bad_params_raise_value_error() -> None:
    """Params that are not one SCALE u32 raise ValueError (the enclave answers an Error)."""
    with pytest.raises(ScaleDecodeError):
        list_auctions(State(), [b"\x01"])
    with pytest.raises(ValueError, match="at most one"):
        list_auctions(State(), [U32.encode(0), U32.encode(1)])


def test_auction_rpc_reads_only() -> None:
    """Listing changes nothing in the state (RPC methods are queries)."""
    state = state_with(3)
    state.checkpoint()
    before = state.items()
    list_auctions(state, [])
    assert state.items() == before
    assert state.changes() == {}
