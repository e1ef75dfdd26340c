"""Errors of tocw.client, the SDK the `tocw` command is a thin layer over.

Every failure a client can meet surfaces as one of these, with a message a user can act on: the
CLI prints `error: <message>` and exits non-zero, never a traceback. Errors of the layers below
(tocw.parentchain, tocw.rpc, tocw.tee, tocw.primitives) are translated at the SDK's boundary so
that callers catch one root.

ClientError                       root of every error raised by tocw.client
├── InvalidInputError             a value typed by the user is malformed (also ValueError)
│   ├── InvalidAmountError        not an amount ("1.5 TEER", "1500000000000")
│   └── UnknownAccountError       not a dev URI, SS58 address, hex public key or keystore name,
│                                 or no secret key is known for an account that must sign
├── KeystoreError                 a key file is unreadable, too open, or its password is wrong
├── NodeError                     the parentchain node refused or failed a request
│   ├── NodeConnectionError       the node cannot be reached or the connection was lost
│   └── ExtrinsicFailedError      an extrinsic was included but failed (its DispatchError)
├── WorkerRequestError            the worker's trusted RPC refused or failed a request
│   └── WorkerConnectionError     the worker cannot be reached or the TLS handshake failed
├── AttestationError              the worker's attestation does not verify or does not bind
│   │                             the shielding key and TLS certificate it presented
│   ├── MrenclaveMismatchError    the worker runs other code than the expected MRENCLAVE
│   └── InsecureEvidenceError     sim evidence (proves nothing) without an explicit opt-in
├── TrustedCallError              a trusted call was processed but did not do what was asked
│   ├── CallRejectedError         the worker did not accept it (signature, nonce, decryption)
│   └── CallFailedError           accepted (nonce bumped) but failed in the STF, e.g. an
│                                 insufficient balance
└── ClientTimeoutError            a bounded wait ended (inclusion, processing, an event)
"""

from __future__ import annotations


class ClientError(Exception):
    """Root of every error raised by tocw.client."""


class InvalidInputError(ClientError, ValueError):
    """A value given by the user is malformed."""


class InvalidAmountError(InvalidInputError):
    """Not an amount: a plain integer of base units, or a decimal with the token's unit."""


class UnknownAccountError(InvalidInputError):
    """An account cannot be resolved, or there is no secret key for an account that signs."""


class KeystoreError(ClientError):
    """A key file cannot be read, written or decrypted."""


class NodeError(ClientError):
    """The parentchain node refused or failed a request."""


class NodeConnectionError(NodeError):
    """The node cannot be reached, or the connection was lost."""


class ExtrinsicFailedError(NodeError):
    """An extrinsic was included in a block but its dispatch failed.

    `reason` is the DispatchError as `Module(Balances.InsufficientBalance)`, `BadOrigin`, ...
    """

    def __init__(self, what: str, reason: str, block_hash: bytes) -> None:
        super().__init__(f"{what} failed on chain: {reason}")
        self.reason = reason
        self.block_hash = block_hash


class WorkerRequestError(ClientError):
    """The worker answered with an error, or with something that is not a valid answer."""


class WorkerConnectionError(WorkerRequestError):
    """The worker cannot be reached, or the TLS handshake with it failed."""


class AttestationError(ClientError):
    """The worker's attestation does not verify, or does not bind what the worker presented."""


class MrenclaveMismatchError(AttestationError):
    """The attested MRENCLAVE is not the one the user expects."""


class InsecureEvidenceError(AttestationError):
    """The worker offers sim evidence, which anyone can forge; refused without an opt-in."""


class TrustedCallError(ClientError):
    """A trusted call was processed by the worker but did not do what was asked."""


class CallRejectedError(TrustedCallError):
    """The worker processed the block but did not accept the call: its nonce did not move."""


class CallFailedError(TrustedCallError):
    """The worker accepted the call (the nonce moved) but its execution failed."""


class ClientTimeoutError(ClientError, TimeoutError):
    """A bounded wait ended before what it waited for happened."""
