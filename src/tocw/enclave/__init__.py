"""tocw.enclave: the trusted side of a worker (ARCHITECTURE.md "Layers").

api.py (the ECALL-like surface, `Enclave`) · ocall.py (what the enclave asks of the host) ·
keys.py and sealing.py (keys generated inside, sealed at rest) · attestation.py (what the
evidence binds) · state_store.py (encrypted per-shard state, one commit per block) ·
light_client.py (which parentchain blocks are accepted) · indirect_calls.py (the hook that
executes clients' calls) · extrinsics.py (what the enclave signs for the parentchain) ·
measurement.py (which code the MRENCLAVE covers) · errors.py (EnclaveError tree).
"""
