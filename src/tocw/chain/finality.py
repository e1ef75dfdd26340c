"""The dev chain's finality: its single GRANDPA voter (//Alice, ed25519, authority set 0).

A real network finalizes by rounds of votes among many authorities; the dev chain has one
authority holding all the weight, so each round is that authority precommitting one block.
What clients see is still real GRANDPA: the justification served with every finalized block
(chain_getBlock, grandpa_subscribeJustifications) is a SCALE `GrandpaJustification` whose
precommit is signed over (Precommit, round, set_id) by a key listed under
`:grandpa_authorities`, so a light client (the enclave's) verifies it exactly as it would on a
production chain. The round number is the block number (any increasing round is valid).
"""

from __future__ import annotations

from dataclasses import dataclass

from tocw.chain.errors import ChainError
from tocw.primitives.grandpa import (
    GRANDPA_AUTHORITIES_KEY,
    authorities_from_storage,
    sign_justification,
    supermajority_threshold,
)
from tocw.primitives.keys import Keypair, KeyScheme

DEV_AUTHORITY_URI = "//Alice"
DEV_SET_ID = 0


class FinalityError(ChainError):
    """The node cannot finalize: its voter is not an authority of the chain's current set."""


@dataclass(frozen=True)
class GrandpaVoter:
    keypair: Keypair
    set_id: int = DEV_SET_ID

    @classmethod
    def dev(cls) -> GrandpaVoter:
        return cls(Keypair.from_uri(DEV_AUTHORITY_URI, KeyScheme.ED25519), DEV_SET_ID)

    @property
    def public_key(self) -> bytes:
        return self.keypair.public_key

    def check_authority(self, authorities_value: bytes | None) -> None:
        """Refuse to run against a state whose `:grandpa_authorities` does not hold this voter
        with a supermajority: the justifications would not verify for anyone."""
        if authorities_value is None:
            raise FinalityError(f"the chain state has no {GRANDPA_AUTHORITIES_KEY.decode()} entry")
        authorities = authorities_from_storage(authorities_value)
        total = sum(w for _, w in authorities)
        mine = sum(w for k, w in authorities if k == self.public_key)
        if total == 0 or mine < supermajority_threshold(total):
            raise FinalityError(
                f"the dev GRANDPA voter 0x{self.public_key.hex()} does not hold more than 2/3 "
                "of the authority set's weight"
            )

    def justify(self, block_hash: bytes, block_number: int) -> bytes:
        """SCALE(GrandpaJustification) finalizing (block_hash, block_number)."""
        justification = sign_justification(
            round=block_number,
            set_id=self.set_id,
            block_hash=block_hash,
            block_number=block_number,
            signers=[(self.public_key, self.keypair.sign)],
        )
        return justification.encode()
