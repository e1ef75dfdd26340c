"""tocw.stf.state: the transactional key-value store and the typed storage items over it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocw.primitives.hashing import blake2_128_concat, blake2_256, twox64_concat
from tocw.primitives.scale import U32, U128
from tocw.primitives.trusted import ACCOUNT_ID
from tocw.primitives.types import AccountId
from tocw.stf.errors import StateError
from tocw.stf.state import State, StorageDoubleMap, StorageMap, StorageValue

A, B, C = b"a", b"b", b"c"


def test_state_get_set_delete_basic() -> None:
    """Writes without a transaction are visible immediately; deleting makes a key absent."""
    s = State({A: b"1"})
    s.set(B, b"2")
    s.delete(A)
    assert s.get(A) is None and s.get(B) == b"2"
    assert A not in s and B in s
    assert s.items() == [(B, b"2")] and len(s) == 1


def test_state_rollback_discards_writes() -> None:
    """A rolled-back transaction leaves no trace, including deletions."""
    s = State({A: b"1"})
    s.begin()
    s.set(B, b"2")
    s.delete(A)
    assert s.get(A) is None and s.get(B) == b"2"
    s.rollback()
    assert s.items() == [(A, b"1")]


def test_state_nested_commit_then_outer_rollback() -> None:
    """An inner commit folds into the outer transaction, which can still roll it all back."""
    s = State()
    s.begin()
    s.set(A, b"outer")
    s.begin()
    s.set(B, b"inner")
    s.commit()
    assert s.depth == 1 and s.get(B) == b"inner"
    s.rollback()
    assert s.items() == [] and s.depth == 0


def test_state_inner_rollback_keeps_outer_writes() -> None:
    """Rolling back the inner transaction keeps what the outer one wrote (the nonce-bump case)."""
    s = State()
    s.begin()
    s.set(A, b"nonce")
    s.begin()
    s.set(A, b"overwritten")
    s.set(B, b"call")
    s.rollback()
    s.commit()
    assert s.items() == [(A, b"nonce")]


def test_state_transaction_context_commits_and_rolls_back() -> None:
    """transaction() commits on success and rolls back and re-raises on an exception."""
    s = State()
    with s.transaction():
        s.set(A, b"1")
    with pytest.raises(KeyError), s.transaction():
        s.set(B, b"2")
        raise KeyError("boom")
    assert s.items() == [(A, b"1")] and s.depth == 0


def test_state_commit_without_begin_raises() -> None:
    """commit/rollback without an open transaction are StateErrors."""
    s = State()
    with pytest.raises(StateError):
        s.commit()
    with pytest.raises(StateError):
        s.rollback()


def test_state_rejects_non_bytes() -> None:
    """Keys and values must be bytes: a str slipping in is a typed error, not silent corruption."""
    s = State()
    with pytest.raises(StateError):
        s.set("a", b"1")  # type: ignore[arg-type]
    with pytest.raises(StateError):
        s.set(A, bytearray(b"1"))  # type: ignore[arg-type]
    with pytest.raises(StateError):
        State({"a": b"1"})  # type: ignore[arg-type]


def test_state_changes_reports_diff_since_checkpoint() -> None:
    """changes() lists new values and deletions since checkpoint(), skipping no-op rewrites."""
    s = State({A: b"1", B: b"2"})
    s.set(C, b"3")
    s.checkpoint()
    assert s.changes() == {}
    s.set(A, b"10")
    s.delete(B)
    s.set(C, b"x")
    s.set(C, b"3")  # back to its checkpoint value: not a change
    s.set(b"d", b"4")
    s.delete(b"d")  # created and deleted: not a change
    assert s.changes() == {A: b"10", B: None}


def test_state_changes_ignore_rolled_back_writes() -> None:
    """Only committed writes reach the diff."""
    s = State()
    s.begin()
    s.set(A, b"1")
    s.rollback()
    s.begin()
    s.set(B, b"2")
    s.commit()
    assert s.changes() == {B: b"2"}


def test_state_changes_with_open_transaction_raises() -> None:
    """A diff taken mid-transaction would be wrong, so it is refused."""
    s = State()
    s.begin()
    with pytest.raises(StateError):
        s.changes()
    with pytest.raises(StateError):
        s.checkpoint()


def test_state_apply_changes_replays_diff() -> None:
    """Applying a diff to the pre-state reproduces the post-state."""
    s = State({A: b"1", B: b"2"})
    before = s.copy()
    s.set(A, b"3")
    s.delete(B)
    s.set(C, b"4")
    before.apply_changes(s.changes())
    assert before.items() == s.items()


def test_state_iter_prefix_merges_layers_sorted() -> None:
    """iter_prefix sees base and open layers, hides deletions and sorts by key."""
    s = State({b"p2": b"x", b"p1": b"y", b"q": b"z"})
    s.begin()
    s.delete(b"p2")
    s.set(b"p0", b"w")
    assert s.iter_prefix(b"p") == [(b"p0", b"w"), (b"p1", b"y")]


def test_state_copy_is_independent() -> None:
    """copy() snapshots the current view; later writes to either side do not leak."""
    s = State({A: b"1"})
    c = s.copy()
    s.set(A, b"2")
    assert c.get(A) == b"1"


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from([A, B, C]), st.binary(max_size=3)),
        st.tuples(st.just("del"), st.sampled_from([A, B, C]), st.just(b"")),
        st.tuples(st.just("begin"), st.just(b""), st.just(b"")),
        st.tuples(st.just("commit"), st.just(b""), st.just(b"")),
        st.tuples(st.just("rollback"), st.just(b""), st.just(b"")),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(_ops)
def test_state_matches_model_of_snapshots(ops: list[tuple[str, bytes, bytes]]) -> None:
    """State behaves like a stack of dict snapshots under any sequence of operations."""
    s = State()
    model: list[dict[bytes, bytes]] = [{}]
    for op, key, value in ops:
        if op == "set":
            s.set(key, value)
            model[-1][key] = value
        elif op == "del":
            s.delete(key)
            model[-1].pop(key, None)
        elif op == "begin":
            s.begin()
            model.append(dict(model[-1]))
        elif op == "commit" and len(model) > 1:
            s.commit()
            top = model.pop()
            model[-1] = top
        elif op == "rollback" and len(model) > 1:
            s.rollback()
            model.pop()
        assert dict(s.items()) == model[-1]
    while len(model) > 1:
        s.commit()
        top = model.pop()
        model[-1] = top
    assert dict(s.items()) == model[0]
    assert s.changes() == dict(model[0])


def test_storage_value_key_is_substrate_layout() -> None:
    """Balances.TotalIssuance gets the key every Substrate chain uses for it."""
    item = StorageValue("Balances", "TotalIssuance", U128)
    assert item.key.hex() == (
        "c2261276cc9d1f8598ea4b6a74b15c2f57c875e4cff74148e4628f264b974c80"
    )  # well-known Substrate storage key
    s = State()
    assert item.get(s) is None and item.get_or(s, 7) == 7
    item.put(s, 5)
    assert s.get(item.key) == (5).to_bytes(16, "little") and item.get(s) == 5
    item.remove(s)
    assert s.items() == []


def test_storage_map_roundtrip_and_entries() -> None:
    """A map stores SCALE values under hashed keys and lists (key, value) back in key order."""
    m = StorageMap("T", "M", blake2_128_concat, ACCOUNT_ID, U32)
    s = State()
    a, b = AccountId(bytes(32)), AccountId(b"\x01" * 32)
    m.put(s, a, 1)
    m.put(s, b, 2)
    assert m.key(a) == m.prefix + blake2_128_concat(a)
    assert sorted(m.entries(s)) == sorted([(a, 1), (b, 2)])
    m.remove(s, a)
    assert m.entries(s) == [(b, 2)] and m.get(s, a) is None and m.get_or(s, a, 9) == 9


def test_storage_map_opaque_hasher_cannot_list() -> None:
    """Entries of a map with a non-transparent hasher cannot be listed: typed error."""
    m = StorageMap("T", "M", blake2_256, U32, U32)
    s = State()
    m.put(s, 1, 1)
    with pytest.raises(StateError):
        m.entries(s)


def test_storage_corrupt_value_raises_state_error() -> None:
    """A stored value that does not decode is reported as StateError naming the key."""
    item = StorageValue("T", "V", U32)
    s = State({item.key: b"\x01"})
    with pytest.raises(StateError, match=item.key.hex()):
        item.get(s)


def test_storage_double_map_entries_and_clear() -> None:
    """Entries under one first key are listed and cleared together, others untouched."""
    d = StorageDoubleMap("T", "D", twox64_concat, U32, blake2_128_concat, ACCOUNT_ID, U32)
    s = State()
    a, b = AccountId(bytes(32)), AccountId(b"\x02" * 32)
    d.put(s, 1, a, 10)
    d.put(s, 1, b, 11)
    d.put(s, 2, a, 20)
    assert sorted(d.entries_of(s, 1)) == sorted([(a, 10), (b, 11)])
    d.clear_prefix(s, 1)
    assert d.entries_of(s, 1) == [] and d.get(s, 2, a) == 20
    d.remove(s, 2, a)
    assert s.items() == []
