"""Errors of the enclave: keys and sealing, the state store, the light client and the API.

Every error the enclave raises across its API is an EnclaveError, so the host can catch one
root; the subclasses say what went wrong precisely enough for a log line to be actionable.
Errors that mean "the data dir holds something we cannot trust" (a sealed blob or a state row
that fails authentication) are never handled by regenerating or resetting: losing a key or a
state silently is worse than refusing to start.

EnclaveError
├── EnclaveUsageError          the API was called out of order or with invalid arguments
│                              (import before init_parentchain, unknown shard, bad length)
├── SealingError               a sealed blob cannot be unsealed
│   ├── SealedBlobFormatError      not a tocw sealed blob (magic, truncated header)
│   ├── SealedBlobVersionError     written by a sealing format version we do not know
│   ├── SealedKeyIdError           the blob holds another key than the one asked for (swapped)
│   ├── ForeignSealingKeyError     sealed under another sealing key (other enclave or machine)
│   └── UnsealError                authentication failed: the blob was modified
├── KeyStoreError              the enclave's keys cannot be loaded
│   ├── MissingSealedKeyError      a key that was created before is gone (never regenerated)
│   ├── CorruptKeyError            a blob unseals but does not hold a valid key
│   ├── NoShieldingKeyError        [keys] a joining enclave has no shielding key yet
│   └── ShieldingKeyConflictError  [keys] a second key would replace the sealed one
├── ProvisioningError          [provisioning] handing the shielding key between enclaves failed:
│                              protocol/TLS, peer attestation (measurement, report_data), chain
│                              proof, peer not registered, giver unavailable, key mismatch,
│                              refused by the peer (the tree is in provisioning.py)
├── StateStoreError            the encrypted state database
│   ├── StateKeyMismatchError      the database was written under another state key
│   ├── StateCorruptError          a row fails authentication or decoding, or a shard's state
│   │                              does not hash to the recorded state root
│   ├── UnknownShardError          the shard was never initialised
│   ├── ShardExistsError           init_shard for a shard that already exists
│   ├── BlockOrderError            a commit for a block that does not follow the head
│   └── RollbackError              the rollback target is outside the retained history
├── LightClientError           a parentchain block fails the light-client checks
│   ├── ParentHashMismatchError    the header's parent hash is not the last imported block
│   ├── BlockNumberMismatchError   the header's number is not last imported + 1
│   ├── ExtrinsicsRootMismatchError the body does not hash to the header's extrinsics_root
│   ├── EventsProofError           the events do not prove against the header's state root
│   └── JustificationError         a GRANDPA justification does not verify against the set
├── ParentchainDecodeError     a block's extrinsics do not decode with the chain's metadata
│                              (runtime upgraded and new metadata not passed in yet)
├── IndirectCallError          the indirect-call hook refused or failed a block
│   └── IndirectCallsUnsupportedError  the block holds calls for our shards and this enclave
│                                      has no executor for them
├── ParentchainExtrinsicFailedError  (a report, not raised) an invoke/shield_funds extrinsic
│                                    failed on chain, so the enclave skipped it
├── GetterError                a getter cannot be answered
│   ├── GetterDecodeError          the bytes are not a Getter of this enclave's modules
│   └── GetterSignatureError       a trusted getter's signature does not verify
└── ExtrinsicCompositionError  the enclave cannot compose an extrinsic it must send (no chain
                               info yet, the call is missing from the chain's metadata)
"""

from __future__ import annotations


class EnclaveError(Exception):
    """Root of every error raised by tocw.enclave."""


class EnclaveUsageError(EnclaveError, ValueError):
    pass


class SealingError(EnclaveError):
    pass


class SealedBlobFormatError(SealingError):
    pass


class SealedBlobVersionError(SealingError):
    pass


class SealedKeyIdError(SealingError):
    pass


class ForeignSealingKeyError(SealingError):
    pass


class UnsealError(SealingError):
    pass


class KeyStoreError(EnclaveError):
    pass


class MissingSealedKeyError(KeyStoreError):
    pass


class CorruptKeyError(KeyStoreError):
    pass


class StateStoreError(EnclaveError):
    pass


class StateKeyMismatchError(StateStoreError):
    pass


class StateCorruptError(StateStoreError):
    pass


class UnknownShardError(StateStoreError, KeyError):
    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class ShardExistsError(StateStoreError):
    pass


class BlockOrderError(StateStoreError):
    pass


class RollbackError(StateStoreError):
    pass


class LightClientError(EnclaveError):
    pass


class ParentHashMismatchError(LightClientError):
    pass


class BlockNumberMismatchError(LightClientError):
    pass


class ExtrinsicsRootMismatchError(LightClientError):
    pass


class EventsProofError(LightClientError):
    pass


class JustificationError(LightClientError):
    pass


class ParentchainDecodeError(EnclaveError):
    pass


class IndirectCallError(EnclaveError):
    pass


class IndirectCallsUnsupportedError(IndirectCallError):
    pass


class GetterError(EnclaveError):
    pass


class GetterDecodeError(GetterError, ValueError):
    pass


class GetterSignatureError(GetterError):
    pass


class ExtrinsicCompositionError(EnclaveError):
    pass


class ParentchainExtrinsicFailedError(EnclaveError):
    """Reported (not raised) for an indirect call whose extrinsic failed on chain."""
