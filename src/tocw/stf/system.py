"""The executor's own state: account nonces, under the reserved namespace "System".

Nonces belong to no module: the executor checks and bumps them for every signed call whatever
module handles it. Modules read them through `account_nonce` (the balances module's `nonce`
getter does). Layout as Substrate's: twox128("System") ++ twox128("AccountNonce") ++
blake2_128_concat(AccountId) -> u32.
"""

from __future__ import annotations

from tocw.primitives.hashing import blake2_128_concat
from tocw.primitives.trusted import ACCOUNT_ID, NONCE
from tocw.primitives.types import AccountId, Nonce
from tocw.stf.state import State, StateView, StorageMap

SYSTEM_NAMESPACE = "System"

ACCOUNT_NONCE: StorageMap[AccountId, Nonce] = StorageMap(
    SYSTEM_NAMESPACE, "AccountNonce", blake2_128_concat, ACCOUNT_ID, NONCE
)


def account_nonce(state: StateView, who: AccountId) -> Nonce:
    """The nonce the next signed call of `who` must carry (0 for an account never seen)."""
    return ACCOUNT_NONCE.get_or(state, who, Nonce(0))


def set_account_nonce(state: State, who: AccountId, nonce: Nonce) -> None:
    ACCOUNT_NONCE.put(state, who, nonce)
