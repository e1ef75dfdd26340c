"""The built-in `balances` module: Integritee's trusted calls and getters (indices 0..49).

Owns private L2 balances (free and reserved per account, and the total issuance) and the
parentchain timestamps, with the calls noop, balance_set_balance, balance_transfer,
balance_unshield, balance_shield and timestamp_set, and the getters free_balance,
reserved_balance, nonce and the public some_value (PROTOCOL.md "Trusted calls", "Getters").

tocw rules, where Integritee's runtime would differ:
- no L2 fees and no existential deposit: shielding credits exactly the shielded amount, an
  unshield pays exactly the burnt amount on L1, and an account whose free and reserved balances
  are both zero is removed from storage (no dust to account for);
- every balance and the total issuance are checked against u128 overflow: a call that would
  overflow fails with BalanceOverflowError instead of saturating;
- parentchain time never goes backwards per parentchain (InvalidTimestampError).

The reserve/unreserve/transfer helpers are public because application modules (e.g. the auction)
move funds through them, so the accounting rules live in one place.

Storage ("Balances" and "Timestamp" namespaces, Substrate key layout):
    Balances.Account        blake2_128_concat(AccountId) -> AccountData {free, reserved: u128}
    Balances.TotalIssuance  u128
    Timestamp.Now           twox64_concat(ParentchainId u8) -> Moment (u64 ms)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tocw.primitives.hashing import blake2_128_concat, twox64_concat
from tocw.primitives.scale import U32, struct
from tocw.primitives.trusted import (
    ACCOUNT_ID,
    BALANCE,
    BASE_CALL_VARIANTS,
    BASE_PUBLIC_GETTER_VARIANTS,
    BASE_TRUSTED_GETTER_VARIANTS,
    MOMENT,
    NONCE,
    PARENTCHAIN_ID,
    BalanceSetBalance,
    BalanceShield,
    BalanceTransfer,
    BalanceUnshield,
    FreeBalance,
    NonceGetter,
    Noop,
    ParentchainId,
    ReservedBalance,
    SomeValue,
    TimestampSet,
)
from tocw.primitives.types import MAX_U128, AccountId, Balance, Moment
from tocw.stf.errors import (
    BadOriginError,
    BalanceOverflowError,
    InsufficientBalanceError,
    InvalidTimestampError,
    WrongShardError,
)
from tocw.stf.state import State, StateView, StorageMap, StorageValue
from tocw.stf.system import account_nonce
from tocw.stf.types import (
    CallContext,
    CallSpec,
    Effect,
    GetterSpec,
    StfModule,
    UnshieldEffect,
)

NAMESPACE = "Balances"
TIMESTAMP_NAMESPACE = "Timestamp"

# PublicGetter::some_value answers this, as Integritee's template does.
SOME_VALUE = 42


@dataclass(frozen=True, slots=True)
class AccountData:
    free: Balance
    reserved: Balance


ACCOUNT_DATA = struct(AccountData, free=BALANCE, reserved=BALANCE)
ZERO_ACCOUNT = AccountData(Balance(0), Balance(0))

ACCOUNTS: StorageMap[AccountId, AccountData] = StorageMap(
    NAMESPACE, "Account", blake2_128_concat, ACCOUNT_ID, ACCOUNT_DATA
)
TOTAL_ISSUANCE: StorageValue[Balance] = StorageValue(NAMESPACE, "TotalIssuance", BALANCE)
NOW: StorageMap[ParentchainId, Moment] = StorageMap(
    TIMESTAMP_NAMESPACE, "Now", twox64_concat, PARENTCHAIN_ID, MOMENT
)


# -- balance accounting (used by application modules too) ---------------------------------------


def account_data(state: StateView, who: AccountId) -> AccountData:
    return ACCOUNTS.get_or(state, who, ZERO_ACCOUNT)


def put_account_data(state: State, who: AccountId, data: AccountData) -> None:
    """Store an account's balances; an all-zero account is removed (no existential deposit)."""
    if data.free == 0 and data.reserved == 0:
        ACCOUNTS.remove(state, who)
    else:
        ACCOUNTS.put(state, who, data)


def total_issuance(state: StateView) -> Balance:
    return TOTAL_ISSUANCE.get_or(state, Balance(0))


def checked_add(a: int, b: int, what: str) -> Balance:
    """a + b as a Balance, or BalanceOverflowError if it does not fit u128."""
    total = a + b
    if total > MAX_U128:
        raise BalanceOverflowError(f"{what} would exceed u128")
    return Balance(total)


def checked_sub(a: int, b: int, who: AccountId, what: str) -> Balance:
    """a - b as a Balance, or InsufficientBalanceError naming the account and the shortfall."""
    if b > a:
        raise InsufficientBalanceError(f"0x{bytes(who).hex()} has {what} {a}, needs {b}")
    return Balance(a - b)


def transfer_free(state: State, source: AccountId, dest: AccountId, amount: Balance) -> None:
    """Move `amount` of free balance; a zero amount or source == dest changes nothing."""
    if amount == 0 or source == dest:
        return
    src = account_data(state, source)
    dst = account_data(state, dest)
    new_src_free = checked_sub(src.free, amount, source, "free balance")
    new_dst_free = checked_add(dst.free, amount, "free balance of the recipient")
    put_account_data(state, source, AccountData(new_src_free, src.reserved))
    put_account_data(state, dest, AccountData(new_dst_free, dst.reserved))


def reserve(state: State, who: AccountId, amount: Balance) -> None:
    """Move `amount` from free to reserved: still owned, no longer spendable."""
    data = account_data(state, who)
    free = checked_sub(data.free, amount, who, "free balance")
    reserved = checked_add(data.reserved, amount, "reserved balance")
    put_account_data(state, who, AccountData(free, reserved))


def unreserve(state: State, who: AccountId, amount: Balance) -> None:
    """Move `amount` from reserved back to free."""
    data = account_data(state, who)
    reserved = checked_sub(data.reserved, amount, who, "reserved balance")
    free = checked_add(data.free, amount, "free balance")
    put_account_data(state, who, AccountData(free, reserved))


def mint(state: State, who: AccountId, amount: Balance) -> None:
    """Create `amount` of free balance (shielding): issuance grows by the same amount."""
    data = account_data(state, who)
    issuance = checked_add(total_issuance(state), amount, "total issuance")
    free = checked_add(data.free, amount, "free balance")
    put_account_data(state, who, AccountData(free, data.reserved))
    TOTAL_ISSUANCE.put(state, issuance)


def burn(state: State, who: AccountId, amount: Balance) -> None:
    """Destroy `amount` of free balance (unshielding): issuance shrinks by the same amount."""
    data = account_data(state, who)
    free = checked_sub(data.free, amount, who, "free balance")
    put_account_data(state, who, AccountData(free, data.reserved))
    # Saturating: the issuance only lags behind accounts if a pre-state was built inconsistent.
    TOTAL_ISSUANCE.put(state, Balance(max(0, total_issuance(state) - amount)))


def validate_enclave_account(account: AccountId, ctx: CallContext) -> None:
    """Enclave-originated calls name the enclave's own account (as Integritee checks)."""
    if account != ctx.env.enclave_account:
        raise BadOriginError(f"0x{bytes(account).hex()} is not this enclave's account")


# -- calls --------------------------------------------------------------------------------------


def apply_noop(state: State, call: Noop, ctx: CallContext) -> Sequence[Effect]:
    """Changes nothing but the nonce (bumped by the executor): a liveness probe for clients."""
    return ()


def apply_set_balance(state: State, call: BalanceSetBalance, ctx: CallContext) -> Sequence[Effect]:
    """Root only: overwrite an account's free and reserved balances, adjusting the issuance."""
    if call.root != ctx.env.root_account:
        raise BadOriginError(f"0x{bytes(call.root).hex()} is not the shard's root account")
    old = account_data(state, call.who)
    remaining = max(0, total_issuance(state) - old.free - old.reserved)
    issuance = checked_add(remaining, call.free, "total issuance")
    issuance = checked_add(issuance, call.reserved, "total issuance")
    put_account_data(state, call.who, AccountData(call.free, call.reserved))
    TOTAL_ISSUANCE.put(state, issuance)
    return ()


def apply_transfer(state: State, call: BalanceTransfer, ctx: CallContext) -> Sequence[Effect]:
    transfer_free(state, call.from_, call.to, call.value)
    return ()


def apply_unshield(state: State, call: BalanceUnshield, ctx: CallContext) -> Sequence[Effect]:
    """Burn on L2 and ask the host to pay the beneficiary the same amount from the vault."""
    if call.shard != ctx.env.shard:
        raise WrongShardError(f"call is for shard 0x{bytes(call.shard).hex()}")
    burn(state, call.from_, call.value)
    return (UnshieldEffect(call.shard, call.beneficiary, call.value, ctx.call_hash),)


def apply_shield(state: State, call: BalanceShield, ctx: CallContext) -> Sequence[Effect]:
    """Enclave only, from a ShieldFunds event: credit exactly the amount locked in the vault."""
    validate_enclave_account(call.enclave_account, ctx)
    mint(state, call.who, call.value)
    return ()


def apply_timestamp_set(state: State, call: TimestampSet, ctx: CallContext) -> Sequence[Effect]:
    """Enclave only, from the parentchain's Timestamp.set: record that parentchain's time."""
    validate_enclave_account(call.enclave_account, ctx)
    previous = NOW.get(state, call.parentchain)
    if previous is not None and call.now < previous:
        raise InvalidTimestampError(
            f"{call.parentchain.name} time went backwards: {call.now} < {previous}"
        )
    NOW.put(state, call.parentchain, call.now)
    return ()


# -- getters ------------------------------------------------------------------------------------


def get_some_value(state: StateView, getter: SomeValue) -> bytes:
    return U32.encode(SOME_VALUE)


def get_free_balance(state: StateView, getter: FreeBalance) -> bytes:
    """Balance; 0 for an account never seen (as Integritee)."""
    return BALANCE.encode(account_data(state, getter.who).free)


def get_reserved_balance(state: StateView, getter: ReservedBalance) -> bytes:
    return BALANCE.encode(account_data(state, getter.who).reserved)


def get_nonce(state: StateView, getter: NonceGetter) -> bytes:
    return NONCE.encode(account_nonce(state, getter.who))


def parentchain_now(state: StateView, parentchain: ParentchainId) -> Moment | None:
    """The last recorded time of a parentchain, None before its first timestamp_set."""
    return NOW.get(state, parentchain)


MODULE = StfModule(
    name="balances",
    indices=range(0, 50),
    calls=(
        CallSpec(0, BASE_CALL_VARIANTS[0], apply_noop),
        CallSpec(1, BASE_CALL_VARIANTS[1], apply_set_balance),
        CallSpec(2, BASE_CALL_VARIANTS[2], apply_transfer),
        CallSpec(3, BASE_CALL_VARIANTS[3], apply_unshield),
        CallSpec(4, BASE_CALL_VARIANTS[4], apply_shield, enclave_only=True),
        CallSpec(5, BASE_CALL_VARIANTS[5], apply_timestamp_set, enclave_only=True),
    ),
    public_getters=(GetterSpec(0, BASE_PUBLIC_GETTER_VARIANTS[0], get_some_value),),
    trusted_getters=(
        GetterSpec(0, BASE_TRUSTED_GETTER_VARIANTS[0], get_free_balance),
        GetterSpec(1, BASE_TRUSTED_GETTER_VARIANTS[1], get_reserved_balance),
        GetterSpec(2, BASE_TRUSTED_GETTER_VARIANTS[2], get_nonce),
    ),
    namespaces=(NAMESPACE, TIMESTAMP_NAMESPACE),
    source_files=(Path(__file__),),
)
