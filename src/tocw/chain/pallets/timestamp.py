"""pallet_timestamp: the block's time, set once per block by an inherent.

The runtime builds the `Timestamp.set` inherent itself from the time the node passes (the
runtime has no clock), so the call never comes from a client: the executive refuses unsigned
extrinsics at submission, and `set` requires the None origin. A time below the previous block's
plus MinimumPeriod is raised to that bound by the executive before the inherent is built
(Substrate would panic; an instant-seal dev chain can make blocks faster than the clock ticks).
"""

from __future__ import annotations

from tocw.chain.errors import DispatchError
from tocw.chain.pallets.framework import (
    CallDef,
    CallEnv,
    ConstantDef,
    Origin,
    PalletDef,
    StorageValue,
    StorageView,
    ensure_none,
)
from tocw.chain.pallets.scaleinfo import BOOL_T, CompactOf, Field
from tocw.chain.pallets.substrate_types import MOMENT_T, DispatchClass, Weight

NAME = "Timestamp"

NOW: StorageValue[int] = StorageValue(
    NAME, "Now", MOMENT_T, 0, docs=(" Current time for the current block.",)
)
DID_UPDATE: StorageValue[bool] = StorageValue(
    NAME, "DidUpdate", BOOL_T, False, docs=(" Did the timestamp get updated in this block?",)
)


def now_ms(state: StorageView) -> int:
    return NOW.value(state)


def set_now(env: CallEnv, origin: Origin, now: int) -> None:
    ensure_none(origin)
    if DID_UPDATE.value(env.state):
        raise DispatchError.other("Timestamp must be updated only once in the block")
    previous = NOW.value(env.state)
    if previous and now < previous + env.config.minimum_period_ms:
        raise DispatchError.other(
            "Timestamp must increment by at least MinimumPeriod between sequential blocks"
        )
    NOW.put(env.state, now)
    DID_UPDATE.put(env.state, True)


SET = CallDef(
    0,
    "set",
    (Field("now", CompactOf(MOMENT_T), "T::Moment"),),
    set_now,
    Weight(9_000_000, 1_006),
    dispatch_class=DispatchClass.Mandatory,
    docs=(" Set the current time. Must be called exactly once per block, as an inherent.",),
)

PALLET = PalletDef(
    NAME,
    calls=(SET,),
    storage=(NOW, DID_UPDATE),
    constants=(
        ConstantDef(
            "MinimumPeriod",
            MOMENT_T,
            lambda config: config.minimum_period_ms,
            (" The minimum period between blocks.",),
        ),
    ),
    crate="pallet_timestamp",
)
