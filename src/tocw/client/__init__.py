"""tocw.client: the Python SDK of a tocw (Integritee-compatible) off-chain worker's clients.

sdk.py (TrustedClient: the whole indirect-invocation workflow, and the re-exported public API) ·
worker.py (Worker: the trusted RPC over TLS pinned to the worker's certificate) ·
attestation.py (verify_worker, WorkerIdentity: the only source of a key the SDK encrypts to) ·
calls.py (TrustedCallBuilder and getter builders) · parentchain.py (Parentchain: accounts,
transfers, invoke, shield_funds, the Teerex registry, bounded waits for events) ·
accounts.py and keystore.py (how users name accounts; key files) · amounts.py (Token) ·
errors.py (the ClientError tree). The `tocw` command (tocw.cli) is a thin layer over these.
"""
