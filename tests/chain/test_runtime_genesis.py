"""Genesis state of the dev runtime, and LocalChain (the runtime driven block by block)."""

from __future__ import annotations

import pytest

from tocw.chain.genesis import (
    DEV_BALANCE,
    GRANDPA_AUTHORITIES_KEY,
    HASH69,
    decode_grandpa_authorities,
)
from tocw.chain.pallets import balances, sudo, system, teerex
from tocw.chain.pallets.substrate_types import AccountInfo, AddressId
from tocw.chain.runtime import LocalChain, Runtime, RuntimeConfig
from tocw.primitives.header import Header, extrinsics_root
from tocw.primitives.keys import Keypair, KeyScheme
from tocw.primitives.metadata import Era
from tocw.primitives.trie import trie_root
from tocw.primitives.types import BlockHash, BlockNumber

DEV = [
    Keypair.from_uri(f"//{n}", KeyScheme.SR25519)
    for n in ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")
]
ALICE, BOB = DEV[0], DEV[1]


def test_genesis_endows_dev_accounts() -> None:
    """//Alice..//Ferdie hold 2^60 each, are provided for, and make up the total issuance."""
    chain = LocalChain()
    for who in DEV:
        info = system.load_account(chain.state, who.public_key)
        assert (info.free, info.nonce, info.providers, info.flags) == (DEV_BALANCE, 0, 1, 1 << 127)
    zoe = Keypair.from_uri("//Zoe", KeyScheme.SR25519).public_key
    assert system.load_account(chain.state, zoe) == AccountInfo()
    assert balances.TOTAL_ISSUANCE.value(chain.state) == 6 * DEV_BALANCE


def test_genesis_sets_sudo_grandpa_and_flags() -> None:
    """Sudo key //Alice, ed25519 //Alice as the GRANDPA authority, the dev Teerex flags."""
    state = LocalChain().state
    assert sudo.KEY.get(state) == ALICE.public_key
    grandpa = Keypair.from_uri("//Alice", KeyScheme.ED25519).public_key
    raw = state.get(GRANDPA_AUTHORITIES_KEY)
    assert raw is not None and raw[0] == 1
    assert decode_grandpa_authorities(raw) == [(grandpa, 1)]
    assert teerex.ALLOW_SKIPPING_ATTESTATION.value(state) is True
    assert teerex.SGX_ALLOW_DEBUG_MODE.value(state) is True
    assert system.BLOCK_HASH.value(state, 0) == HASH69
    assert system.NUMBER.value(state) == 0


def test_genesis_follows_config_flags() -> None:
    """The config's attestation flags reach the chain's Teerex storage."""
    config = RuntimeConfig(allow_skipping_attestation=False, sgx_allow_debug_mode=False)
    state = LocalChain(Runtime(config)).state
    assert teerex.ALLOW_SKIPPING_ATTESTATION.value(state) is False
    assert teerex.SGX_ALLOW_DEBUG_MODE.value(state) is False


def test_genesis_non_dev_requires_explicit_genesis() -> None:
    """A non-dev runtime refuses to invent accounts."""
    with pytest.raises(ValueError, match="GenesisConfig"):
        Runtime(RuntimeConfig(dev=False)).genesis_storage()


def test_runtime_config_rejects_nonsense() -> None:
    """A zero existential deposit or minimum period is refused up front."""
    with pytest.raises(ValueError, match="existential_deposit"):
        RuntimeConfig(existential_deposit=0)
    with pytest.raises(ValueError, match="minimum_period"):
        RuntimeConfig(minimum_period_ms=0)


def test_local_chain_headers_are_real() -> None:
    """Genesis and block hashes are blake2_256 of real headers over the real trie roots."""
    chain = LocalChain()
    genesis = Header(
        BlockHash(bytes(32)), BlockNumber(0), trie_root(chain.state.data, 1), extrinsics_root([])
    )
    assert chain.genesis_hash == genesis.hash()
    result = chain.produce()
    block1 = Header(
        BlockHash(genesis.hash()),
        BlockNumber(1),
        trie_root(chain.state.data, 1),
        extrinsics_root(result.extrinsics),
    )
    assert chain.head == block1.hash() and chain.number == 1


def test_local_chain_signs_mortal_extrinsics_at_their_birth_block() -> None:
    """LocalChain.sign anchors a mortal era at the block hash of its birth."""
    chain = LocalChain()
    for _ in range(5):
        chain.produce()
    call = chain.call("Balances", "transfer_keep_alive", AddressId(BOB.public_key), 10**12)
    xt = chain.sign(ALICE, call, era=Era.mortal(4, chain.number))
    chain.validate(xt)
    result = chain.produce(xt)
    assert result.extrinsics[1:] == [xt] and result.dispatch_error(1) is None
