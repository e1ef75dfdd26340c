"""pallet_balances (polkadot-v0.9.42 layout): free balances, existential deposit, transfers.

Balances live in System.Account (AccountStore = System), as on node-template. An account exists
while its total balance is at least the existential deposit: reaching it provides the account
(System.NewAccount, Balances.Endowed), falling below it with "allow death" reaps the account
(System.KilledAccount, Balances.DustLost for the burnt remainder) and loses its nonce, exactly
as Substrate does.

Deliberate differences from Substrate 0.9.42, all invisible to a client that only transfers:
- transfers fail with this pallet's module errors (InsufficientBalance, ExistentialDeposit,
  Expendability), which is what the `Currency` trait reports; 0.9.42's fungible-based
  `transfer_allow_death` reports some of these as `Token(..)` errors instead;
- no reserves, holds, locks or freezes (nothing on this chain uses them), hence no
  `force_unreserve`, `upgrade_accounts`, `set_balance_deprecated` calls and no Locks/Reserves/
  Holds/Freezes storage; `reserved` and `frozen` stay zero;
- transaction fees are burnt (node-template's `CurrencyAdapter<Balances, ()>`).
"""

from __future__ import annotations

from enum import IntEnum

from tocw.chain.errors import ArithmeticErrorKind, DispatchError
from tocw.chain.pallets import system
from tocw.chain.pallets.framework import (
    CallDef,
    CallEnv,
    ConstantDef,
    ErrorDef,
    EventDef,
    Origin,
    PalletDef,
    StorageValue,
    StorageView,
    ensure_root,
    ensure_signed,
)
from tocw.chain.pallets.scaleinfo import BOOL_T, U32_T, Field, int_enum_type
from tocw.chain.pallets.substrate_types import (
    ACCOUNT_ID_T,
    BALANCE_T,
    COMPACT_BALANCE_T,
    MULTI_ADDRESS_T,
    AccountInfo,
    AddressId,
    MultiAddress,
    Weight,
)

NAME = "Balances"
U128_MAX = (1 << 128) - 1

# --- storage ------------------------------------------------------------------------------------

TOTAL_ISSUANCE: StorageValue[int] = StorageValue(
    NAME, "TotalIssuance", BALANCE_T, 0, docs=(" The total units issued in the system.",)
)
INACTIVE_ISSUANCE: StorageValue[int] = StorageValue(
    NAME,
    "InactiveIssuance",
    BALANCE_T,
    0,
    docs=(" The total units of outstanding deactivated balance in the system.",),
)

# --- events -------------------------------------------------------------------------------------


class BalanceStatus(IntEnum):
    Free = 0
    Reserved = 1


_BALANCE_STATUS_T = int_enum_type(
    ["frame_support", "traits", "tokens", "misc", "BalanceStatus"], BalanceStatus
)


def _who_amount(index: int, name: str, doc: str) -> EventDef:
    return EventDef(
        NAME,
        index,
        name,
        (Field("who", ACCOUNT_ID_T, "T::AccountId"), Field("amount", BALANCE_T, "T::Balance")),
        (doc,),
    )


EV_ENDOWED = EventDef(
    NAME,
    0,
    "Endowed",
    (
        Field("account", ACCOUNT_ID_T, "T::AccountId"),
        Field("free_balance", BALANCE_T, "T::Balance"),
    ),
    (" An account was created with some free balance.",),
)
EV_DUST_LOST = EventDef(
    NAME,
    1,
    "DustLost",
    (Field("account", ACCOUNT_ID_T, "T::AccountId"), Field("amount", BALANCE_T, "T::Balance")),
    (
        " An account was removed whose balance was non-zero but below ExistentialDeposit,",
        " resulting in an outright loss.",
    ),
)
EV_TRANSFER = EventDef(
    NAME,
    2,
    "Transfer",
    (
        Field("from", ACCOUNT_ID_T, "T::AccountId"),
        Field("to", ACCOUNT_ID_T, "T::AccountId"),
        Field("amount", BALANCE_T, "T::Balance"),
    ),
    (" Transfer succeeded.",),
)
EV_BALANCE_SET = EventDef(
    NAME,
    3,
    "BalanceSet",
    (Field("who", ACCOUNT_ID_T, "T::AccountId"), Field("free", BALANCE_T, "T::Balance")),
    (" A balance was set by root.",),
)
EV_WITHDRAW = _who_amount(8, "Withdraw", " Some amount was withdrawn from the account.")

EVENTS = (
    EV_ENDOWED,
    EV_DUST_LOST,
    EV_TRANSFER,
    EV_BALANCE_SET,
    _who_amount(4, "Reserved", " Some balance was reserved (moved from free to reserved)."),
    _who_amount(5, "Unreserved", " Some balance was unreserved (moved from reserved to free)."),
    EventDef(
        NAME,
        6,
        "ReserveRepatriated",
        (
            Field("from", ACCOUNT_ID_T, "T::AccountId"),
            Field("to", ACCOUNT_ID_T, "T::AccountId"),
            Field("amount", BALANCE_T, "T::Balance"),
            Field("destination_status", _BALANCE_STATUS_T, "Status"),
        ),
        (" Some balance was moved from the reserve of the first account to the second account.",),
    ),
    _who_amount(7, "Deposit", " Some amount was deposited (e.g. for transaction fees)."),
    EV_WITHDRAW,
    _who_amount(9, "Slashed", " Some amount was removed from the account (e.g. for misbehavior)."),
    _who_amount(10, "Minted", " Some amount was minted into an account."),
    _who_amount(11, "Burned", " Some amount was burned from an account."),
    _who_amount(12, "Suspended", " Some amount was suspended from an account."),
    _who_amount(13, "Restored", " Some amount was restored into an account."),
    EventDef(
        NAME,
        14,
        "Upgraded",
        (Field("who", ACCOUNT_ID_T, "T::AccountId"),),
        (" An account was upgraded.",),
    ),
    EventDef(
        NAME,
        15,
        "Issued",
        (Field("amount", BALANCE_T, "T::Balance"),),
        (" Total issuance was increased by `amount`, creating a credit to be balanced.",),
    ),
    EventDef(
        NAME,
        16,
        "Rescinded",
        (Field("amount", BALANCE_T, "T::Balance"),),
        (" Total issuance was decreased by `amount`, creating a debt to be balanced.",),
    ),
    _who_amount(17, "Locked", " Some balance was locked."),
    _who_amount(18, "Unlocked", " Some balance was unlocked."),
    _who_amount(19, "Frozen", " Some balance was frozen."),
    _who_amount(20, "Thawed", " Some balance was thawed."),
)

# --- errors -------------------------------------------------------------------------------------

ERR_VESTING_BALANCE = ErrorDef(
    NAME, 0, "VestingBalance", (" Vesting balance too high to send value.",)
)
ERR_LIQUIDITY_RESTRICTIONS = ErrorDef(
    NAME, 1, "LiquidityRestrictions", (" Account liquidity restrictions prevent withdrawal.",)
)
ERR_INSUFFICIENT_BALANCE = ErrorDef(
    NAME, 2, "InsufficientBalance", (" Balance too low to send value.",)
)
ERR_EXISTENTIAL_DEPOSIT = ErrorDef(
    NAME,
    3,
    "ExistentialDeposit",
    (" Value too low to create account due to existential deposit.",),
)
ERR_EXPENDABILITY = ErrorDef(NAME, 4, "Expendability", (" Transfer/payment would kill account.",))
ERRORS = (
    ERR_VESTING_BALANCE,
    ERR_LIQUIDITY_RESTRICTIONS,
    ERR_INSUFFICIENT_BALANCE,
    ERR_EXISTENTIAL_DEPOSIT,
    ERR_EXPENDABILITY,
    ErrorDef(NAME, 5, "ExistingVestingSchedule", (" A vesting schedule already exists.",)),
    ErrorDef(NAME, 6, "DeadAccount", (" Beneficiary account must pre-exist.",)),
    ErrorDef(NAME, 7, "TooManyReserves", (" Number of named reserves exceed `MaxReserves`.",)),
    ErrorDef(NAME, 8, "TooManyHolds", (" Number of holds exceed `MaxHolds`.",)),
    ErrorDef(NAME, 9, "TooManyFreezes", (" Number of freezes exceed `MaxFreezes`.",)),
)

# --- balance logic (also used by EnclaveBridge and transaction payment) -------------------------


def lookup(address: MultiAddress) -> bytes:
    """AccountIdLookup: only MultiAddress::Id names an account on this chain."""
    if isinstance(address, AddressId):
        return address.account
    raise DispatchError.cannot_lookup(f"{type(address).__name__} addresses cannot be looked up")


def free_balance(state: StorageView, who: bytes) -> int:
    return system.load_account(state, who).free


def _add_issuance(state: StorageView, delta: int) -> None:
    TOTAL_ISSUANCE.put(state, max(0, min(U128_MAX, TOTAL_ISSUANCE.value(state) + delta)))


def _write(env: CallEnv, who: bytes, info: AccountInfo, was_alive: bool) -> None:
    """Store a changed balance, providing a newly endowed account or reaping a dead one."""
    total = info.free + info.reserved
    if total >= env.config.existential_deposit:
        if not was_alive:
            info.providers += 1
            env.deposit_event(system.EV_NEW_ACCOUNT, who)
            env.deposit_event(EV_ENDOWED, who, info.free)
        system.store_account(env.state, who, info)
        return
    if not was_alive:
        # Callers refuse to create accounts below the existential deposit.
        raise ERR_EXISTENTIAL_DEPOSIT.error(f"{total} is below the existential deposit")
    info.free = info.reserved = 0
    info.providers -= 1
    system.store_account(env.state, who, info)
    if info.providers == 0 and info.sufficients == 0:
        env.deposit_event(system.EV_KILLED_ACCOUNT, who)
    if total:
        _add_issuance(env.state, -total)
        env.deposit_event(EV_DUST_LOST, who, total)


def transfer(env: CallEnv, source: bytes, dest: bytes, value: int, keep_alive: bool) -> None:
    """Currency::transfer: move `value` free balance, creating `dest` or reaping `source`."""
    if value == 0 or source == dest:
        return
    ed = env.config.existential_deposit
    src = system.load_account(env.state, source)
    src_alive = src.providers > 0
    if src.free < value:
        raise ERR_INSUFFICIENT_BALANCE.error(f"free balance {src.free} < {value}")
    new_src_free = src.free - value
    if keep_alive and new_src_free + src.reserved < ed:
        raise ERR_EXPENDABILITY.error(
            f"the sender would keep {new_src_free}, below the existential deposit {ed}"
        )
    dst = system.load_account(env.state, dest)
    dst_alive = dst.providers > 0
    new_dst_free = dst.free + value
    if new_dst_free > U128_MAX:
        raise DispatchError.arithmetic(ArithmeticErrorKind.Overflow, "recipient balance")
    if new_dst_free + dst.reserved < ed:
        raise ERR_EXISTENTIAL_DEPOSIT.error(
            f"the recipient would hold {new_dst_free}, below the existential deposit {ed}"
        )
    src.free = new_src_free
    _write(env, source, src, src_alive)
    dst.free = new_dst_free
    _write(env, dest, dst, dst_alive)
    env.deposit_event(EV_TRANSFER, source, dest, value)


def can_withdraw_fee(state: StorageView, who: bytes, fee: int, existential_deposit: int) -> str:
    """Empty if `who` can pay `fee` and stay alive (fees are withdrawn with KeepAlive), else
    why not."""
    info = system.load_account(state, who)
    if info.free < fee:
        return f"free balance {info.free} < fee {fee}"
    if info.free - fee + info.reserved < existential_deposit:
        return f"paying {fee} would leave {info.free - fee}, below the existential deposit"
    return ""


def endow(state: StorageView, who: bytes, amount: int) -> None:
    """Genesis: create an account holding `amount` (no events: there is no block yet)."""
    info = system.load_account(state, who)
    if info.providers == 0:
        info.providers = 1
    info.free += amount
    system.store_account(state, who, info)
    _add_issuance(state, amount)


# --- calls --------------------------------------------------------------------------------------


def transfer_allow_death(env: CallEnv, origin: Origin, dest: MultiAddress, value: int) -> None:
    transfer(env, ensure_signed(origin), lookup(dest), value, keep_alive=False)


def transfer_keep_alive(env: CallEnv, origin: Origin, dest: MultiAddress, value: int) -> None:
    transfer(env, ensure_signed(origin), lookup(dest), value, keep_alive=True)


def force_transfer(
    env: CallEnv, origin: Origin, source: MultiAddress, dest: MultiAddress, value: int
) -> None:
    ensure_root(origin)
    transfer(env, lookup(source), lookup(dest), value, keep_alive=False)


def transfer_all(env: CallEnv, origin: Origin, dest: MultiAddress, keep_alive: bool) -> None:
    source = ensure_signed(origin)
    free = free_balance(env.state, source)
    amount = max(0, free - env.config.existential_deposit) if keep_alive else free
    transfer(env, source, lookup(dest), amount, keep_alive)


def force_set_balance(env: CallEnv, origin: Origin, who: MultiAddress, new_free: int) -> None:
    ensure_root(origin)
    account = lookup(who)
    if new_free < env.config.existential_deposit:
        new_free = 0
    info = system.load_account(env.state, account)
    old_free = info.free
    info.free = new_free
    if info.providers == 0 and new_free == 0:
        env.deposit_event(EV_BALANCE_SET, account, 0)
        return
    _write(env, account, info, info.providers > 0)
    _add_issuance(env.state, new_free - old_free)
    env.deposit_event(EV_BALANCE_SET, account, new_free)


_DEST = Field("dest", MULTI_ADDRESS_T, "AccountIdLookupOf<T>")
_VALUE = Field("value", COMPACT_BALANCE_T, "T::Balance")
TRANSFER_WEIGHT = Weight(150_000_000, 3_593)

CALLS = (
    CallDef(
        0,
        "transfer_allow_death",
        (_DEST, _VALUE),
        transfer_allow_death,
        TRANSFER_WEIGHT,
        docs=(" Transfer some liquid free balance to another account.",),
    ),
    CallDef(
        2,
        "force_transfer",
        (Field("source", MULTI_ADDRESS_T, "AccountIdLookupOf<T>"), _DEST, _VALUE),
        force_transfer,
        TRANSFER_WEIGHT,
        docs=(" Exactly as `transfer_allow_death`, except the origin must be root.",),
    ),
    CallDef(
        3,
        "transfer_keep_alive",
        (_DEST, _VALUE),
        transfer_keep_alive,
        TRANSFER_WEIGHT,
        docs=(" Same as `transfer_allow_death`, but the sender is never killed.",),
    ),
    CallDef(
        4,
        "transfer_all",
        (_DEST, Field("keep_alive", BOOL_T, "bool")),
        transfer_all,
        TRANSFER_WEIGHT,
        docs=(" Transfer the entire transferable balance from the caller account.",),
    ),
    CallDef(
        7,
        "transfer",
        (_DEST, _VALUE),
        transfer_allow_death,
        TRANSFER_WEIGHT,
        docs=(" Alias for `transfer_allow_death`, provided only for name-wise compatibility.",),
    ),
    CallDef(
        8,
        "force_set_balance",
        (
            Field("who", MULTI_ADDRESS_T, "AccountIdLookupOf<T>"),
            Field("new_free", COMPACT_BALANCE_T, "T::Balance"),
        ),
        force_set_balance,
        Weight(100_000_000, 3_593),
        docs=(" Set the regular balance of a given account. The origin must be root.",),
    ),
)

CONSTANTS = (
    ConstantDef(
        "ExistentialDeposit",
        BALANCE_T,
        lambda config: config.existential_deposit,
        (" The minimum amount required to keep an account open.",),
    ),
    ConstantDef("MaxLocks", U32_T, lambda _: 50, (" The maximum number of locks per account.",)),
    ConstantDef("MaxReserves", U32_T, lambda _: 50, (" The maximum number of named reserves.",)),
    ConstantDef("MaxHolds", U32_T, lambda _: 0, (" The maximum number of holds.",)),
    ConstantDef("MaxFreezes", U32_T, lambda _: 0, (" The maximum number of freezes.",)),
)

PALLET = PalletDef(
    NAME,
    calls=CALLS,
    events=EVENTS,
    errors=ERRORS,
    storage=(TOTAL_ISSUANCE, INACTIVE_ISSUANCE),
    constants=CONSTANTS,
    crate="pallet_balances",
    type_params=("T", "I"),
)
