"""tocw.worker: the untrusted host of a worker (ARCHITECTURE.md "Layers").

Owns the service around the enclave: configuration (config.py), the main loop and startup
(service.py), following the parentchain (follower.py), submitting the extrinsics the enclave
signed (submitter.py), the sealed-blob files (sealed_store.py) and the servers (servers.py,
metrics.py). The host drives the enclave only through tocw.enclave.api.EnclaveApi and serves its
I/O through tocw.enclave.ocall.OCallApi; it never holds a secret.

The one exception root of the package, and its tree:

WorkerError
├── WorkerConfigError       (config.py) a setting is missing, malformed or inconsistent
├── WorkerStartupError      (service.py) the worker cannot start: the chain lacks a pallet, the
│                           data dir follows another chain, the shard belongs to other
│                           enclaves, registration failed, a port is taken, ...
├── WorkerStoppedError      (service.py) stop() (SIGTERM) arrived while still starting
├── FollowerError           (follower.py) following the parentchain failed for good (the
│                           enclave refused a block: wrong chain, fork, undecodable body)
├── SubscriptionUnsupportedError  (follower.py) the node cannot subscribe to finalized heads;
│                           the follower polls instead (a signal, never fatal)
├── SubmissionError         (submitter.py) the outbox of enclave-signed extrinsics is unusable
└── NodeRejectedError       (submitter.py) the node refused an extrinsic (code, message, data);
                            the submitter decides from it whether to retry (a signal)

(`sealed_store.SealedStoreError` and `servers.ServerError` stay outside it; the service wraps
them in WorkerStartupError.) Connection losses are
not errors here: the follower and the submitter reconnect and retry with backoff.
"""

from __future__ import annotations


class WorkerError(Exception):
    """Root of the errors raised by tocw.worker."""
