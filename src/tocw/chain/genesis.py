"""The dev chain's genesis: endowed accounts, sudo key, GRANDPA authority, pallet flags.

`dev_genesis()` is what `tocw chain --dev` starts from: //Alice, //Bob, //Charlie, //Dave, //Eve
and //Ferdie (sr25519, as polkadot.js and subkey derive them) hold 2^60 units each (about 1.15
million TEER), //Alice is the sudo key, and ed25519 //Alice is the only GRANDPA authority (set
id 0), announced under the well-known key `:grandpa_authorities`.
"""

from __future__ import annotations

from tocw.chain.pallets import balances, sudo, system, teerex
from tocw.chain.pallets.framework import GenesisConfig, RuntimeConfig, StorageView
from tocw.primitives.keys import Keypair, KeyScheme
from tocw.primitives.scale import U64, FixedBytes, Tuple, Vec

DEV_ACCOUNT_URIS = ("//Alice", "//Bob", "//Charlie", "//Dave", "//Eve", "//Ferdie")
DEV_BALANCE = 1 << 60
DEV_SUDO_URI = "//Alice"
DEV_GRANDPA_URI = "//Alice"

# Well-known storage keys (sp_core::storage::well_known_keys, sp_consensus_grandpa).
GRANDPA_AUTHORITIES_KEY = b":grandpa_authorities"
EXTRINSIC_INDEX_KEY = b":extrinsic_index"
GRANDPA_AUTHORITIES_VERSION = 1
GRANDPA_SET_ID = 0

# frame_system's genesis writes this placeholder as the hash of block 0 and as ParentHash;
# block 1 overwrites BlockHash(0) with the real genesis hash.
HASH69 = bytes([69]) * 32

AUTHORITY_LIST = Vec(Tuple(FixedBytes(32), U64))


def dev_genesis() -> GenesisConfig:
    accounts = tuple(
        (Keypair.from_uri(uri, KeyScheme.SR25519).public_key, DEV_BALANCE)
        for uri in DEV_ACCOUNT_URIS
    )
    return GenesisConfig(
        endowed=accounts,
        sudo_key=Keypair.from_uri(DEV_SUDO_URI, KeyScheme.SR25519).public_key,
        grandpa_authorities=((Keypair.from_uri(DEV_GRANDPA_URI, KeyScheme.ED25519).public_key, 1),),
    )


def encode_grandpa_authorities(authorities: tuple[tuple[bytes, int], ...]) -> bytes:
    """`:grandpa_authorities` = SCALE((version u8 = 1, Vec<(ed25519 public key, weight)>))."""
    return bytes((GRANDPA_AUTHORITIES_VERSION,)) + AUTHORITY_LIST.encode(list(authorities))


def decode_grandpa_authorities(raw: bytes) -> list[tuple[bytes, int]]:
    """The authority list of a `:grandpa_authorities` value (ScaleDecodeError if malformed)."""
    return [(bytes(key), int(weight)) for key, weight in AUTHORITY_LIST.decode(raw[1:])]


def write_genesis(
    state: StorageView, config: RuntimeConfig, spec_name: str, spec_version: int
) -> None:
    """Write the genesis state of every pallet into `state`."""
    genesis = config.genesis
    if genesis is None:
        if not config.dev:
            raise ValueError("a non-dev runtime needs an explicit GenesisConfig")
        genesis = dev_genesis()
    system.BLOCK_HASH.insert(state, 0, HASH69)
    system.PARENT_HASH.put(state, HASH69)
    system.LAST_RUNTIME_UPGRADE.put(state, (spec_version, spec_name))
    system.UPGRADED_TO_U32_REF_COUNT.put(state, True)
    system.UPGRADED_TO_TRIPLE_REF_COUNT.put(state, True)
    state.set(EXTRINSIC_INDEX_KEY, bytes(4))
    for account, amount in genesis.endowed:
        if amount < config.existential_deposit:
            raise ValueError(f"genesis balance {amount} is below the existential deposit")
        balances.endow(state, account, amount)
    if genesis.sudo_key is not None:
        sudo.KEY.put(state, genesis.sudo_key)
    teerex.ALLOW_SKIPPING_ATTESTATION.put(state, config.allow_skipping_attestation)
    teerex.SGX_ALLOW_DEBUG_MODE.put(state, config.sgx_allow_debug_mode)
    state.set(GRANDPA_AUTHORITIES_KEY, encode_grandpa_authorities(genesis.grandpa_authorities))
