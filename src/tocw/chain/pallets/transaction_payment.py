"""pallet_transaction_payment (polkadot-v0.9.42 layout): the fee model and the fee event.

The fee of a signed extrinsic is `transaction_base_fee + transaction_byte_fee * length` plus
its tip: no weight fee, and a constant fee multiplier of 1 (node-template's
`ConstFeeMultiplier`), so the fee is known before dispatch and there is never a refund. The
executive (tocw.chain.runtime) withdraws it before dispatch (Balances.Withdraw) and burns it,
and after dispatch, successful or not, deposits `TransactionFeePaid { who, actual_fee, tip }`
with `actual_fee` including the tip, exactly as `ChargeTransactionPayment::post_dispatch` does.
Clients read the fee from that event: substrate-interface's `ExtrinsicReceipt.total_fee_amount`
is its `actual_fee`.

The pallet has no calls. It sits after Sudo in the runtime, so that the indices of the pallets
declared before it did not change when it was added (node-template puts it before Sudo).
`NextFeeMultiplier` is declared (ValueQuery, 1.0 as FixedU128) so that clients that read it
get Substrate's answer; it is never written, as ConstFeeMultiplier never changes it.
"""

from __future__ import annotations

from tocw.chain.pallets.framework import EventDef, PalletDef, RuntimeConfig, StorageValue
from tocw.chain.pallets.scaleinfo import U128_T, Composite, Field
from tocw.chain.pallets.substrate_types import ACCOUNT_ID_T, BALANCE_T

NAME = "TransactionPayment"

# sp_arithmetic's FixedU128: a u128 holding the value times 10^18.
FIXED_U128_ONE = 10**18
FIXED_U128_T = Composite(
    ["sp_arithmetic", "fixed_point", "FixedU128"], [Field(None, U128_T, "u128")]
)

NEXT_FEE_MULTIPLIER: StorageValue[int] = StorageValue(
    NAME, "NextFeeMultiplier", FIXED_U128_T, FIXED_U128_ONE
)

EV_TRANSACTION_FEE_PAID = EventDef(
    NAME,
    0,
    "TransactionFeePaid",
    (
        Field("who", ACCOUNT_ID_T, "T::AccountId"),
        Field("actual_fee", BALANCE_T, "BalanceOf<T>"),
        Field("tip", BALANCE_T, "BalanceOf<T>"),
    ),
    (
        " A transaction fee `actual_fee`, of which `tip` was added to the minimum inclusion fee,",
        " has been paid by `who`.",
    ),
)


def inclusion_fee(config: RuntimeConfig, length: int) -> int:
    """The fee of a signed extrinsic of `length` encoded bytes, tip excluded (unsigned
    extrinsics pay nothing)."""
    return config.transaction_base_fee + config.transaction_byte_fee * length


PALLET = PalletDef(
    NAME,
    events=(EV_TRANSACTION_FEE_PAID,),
    storage=(NEXT_FEE_MULTIPLIER,),
    crate="pallet_transaction_payment",
)
