"""tocw: a TEE off-chain worker for Substrate parentchains, in Python.

Layers (imports point down only, see ARCHITECTURE.md and tests/test_layers.py):
cli/client -> worker -> enclave -> stf/tee -> primitives; chain, parentchain and rpc beside them.
"""

__version__ = "0.1.0"
