"""pallet_sudo: one key (//Alice in dev) that may dispatch any call as Root, or as anyone.

The inner call runs transactionally: if it fails, its effects are dropped, the sudo call itself
succeeds and `Sudid { sudo_result: Err(..) }` carries the error, as in Substrate. One
difference: the sudo key pays the normal fee (Substrate refunds it for successful sudo calls).
"""

from __future__ import annotations

from tocw.chain.pallets import balances
from tocw.chain.pallets.framework import (
    ROOT,
    Call,
    CallDef,
    CallEnv,
    ErrorDef,
    EventDef,
    Origin,
    PalletDef,
    Signed,
    StorageValue,
    StorageView,
    ensure_signed,
)
from tocw.chain.pallets.scaleinfo import Field, OptionOf
from tocw.chain.pallets.substrate_types import (
    ACCOUNT_ID_T,
    DISPATCH_RESULT_T,
    MULTI_ADDRESS_T,
    RUNTIME_CALL,
    WEIGHT_T,
    MultiAddress,
    Weight,
)

NAME = "Sudo"

KEY: StorageValue[bytes] = StorageValue(
    NAME, "Key", ACCOUNT_ID_T, docs=(" The `AccountId` of the sudo key.",)
)

EV_SUDID = EventDef(
    NAME,
    0,
    "Sudid",
    (Field("sudo_result", DISPATCH_RESULT_T, "DispatchResult"),),
    (" A sudo just took place.",),
)
EV_KEY_CHANGED = EventDef(
    NAME,
    1,
    "KeyChanged",
    (Field("old_sudoer", OptionOf(ACCOUNT_ID_T), "Option<T::AccountId>"),),
    (" The sudo key has been updated.",),
)
EV_SUDO_AS_DONE = EventDef(
    NAME,
    2,
    "SudoAsDone",
    (Field("sudo_result", DISPATCH_RESULT_T, "DispatchResult"),),
    (" A sudo_as just took place.",),
)
ERR_REQUIRE_SUDO = ErrorDef(NAME, 0, "RequireSudo", (" Sender must be the Sudo account",))


def sudo_key(state: StorageView) -> bytes | None:
    return KEY.get(state)


def _ensure_sudo(env: CallEnv, origin: Origin) -> bytes:
    sender = ensure_signed(origin)
    if sender != KEY.get(env.state):
        raise ERR_REQUIRE_SUDO.error("the sender is not the sudo key")
    return sender


def sudo(env: CallEnv, origin: Origin, call: Call) -> None:
    _ensure_sudo(env, origin)
    env.deposit_event(EV_SUDID, env.dispatch(call, ROOT))


def sudo_unchecked_weight(env: CallEnv, origin: Origin, call: Call, weight: Weight) -> None:
    sudo(env, origin, call)


def set_key(env: CallEnv, origin: Origin, new: MultiAddress) -> None:
    old = _ensure_sudo(env, origin)
    KEY.put(env.state, balances.lookup(new))
    env.deposit_event(EV_KEY_CHANGED, old)


def sudo_as(env: CallEnv, origin: Origin, who: MultiAddress, call: Call) -> None:
    _ensure_sudo(env, origin)
    env.deposit_event(EV_SUDO_AS_DONE, env.dispatch(call, Signed(balances.lookup(who))))


_CALL = Field("call", RUNTIME_CALL, "Box<<T as Config>::RuntimeCall>")
_WHO = Field("who", MULTI_ADDRESS_T, "AccountIdLookupOf<T>")

PALLET = PalletDef(
    NAME,
    calls=(
        CallDef(
            0,
            "sudo",
            (_CALL,),
            sudo,
            Weight(20_000_000),
            docs=(
                " Authenticates the sudo key and dispatches a function call with `Root` origin.",
            ),
        ),
        CallDef(
            1,
            "sudo_unchecked_weight",
            (_CALL, Field("weight", WEIGHT_T, "Weight")),
            sudo_unchecked_weight,
            Weight(20_000_000),
            docs=(" As `sudo`, with a caller-given weight (accepted and ignored here).",),
        ),
        CallDef(
            2,
            "set_key",
            (Field("new", MULTI_ADDRESS_T, "AccountIdLookupOf<T>"),),
            set_key,
            Weight(20_000_000),
            docs=(
                " Authenticates the current sudo key and sets the given AccountId as the new key.",
            ),
        ),
        CallDef(
            3,
            "sudo_as",
            (_WHO, _CALL),
            sudo_as,
            Weight(20_000_000),
            docs=(" Dispatches a function call with a `Signed` origin of the given account.",),
        ),
    ),
    events=(EV_SUDID, EV_KEY_CHANGED, EV_SUDO_AS_DONE),
    errors=(ERR_REQUIRE_SUDO,),
    storage=(KEY,),
    crate="pallet_sudo",
)
