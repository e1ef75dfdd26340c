"""tocw.chain: the embedded development parentchain, a Substrate-compatible node in Python.

The runtime (runtime.py, pallets/, metadata.py) is a pure state machine; the node (node.py:
`Chain` and the `DevNode` service, storage.py, pool.py, finality.py, server.py,
rpc_methods.py) stores its blocks, builds and finalizes them and serves Substrate's JSON-RPC.
`tocw chain --dev` (tocw.cli.chain) runs it; tocw.chain.testing starts it for tests.

Only primitives and rpc may be imported from here (tests/test_layers.py). This package's
`__init__` imports nothing, so that importing one module (say tocw.chain.errors) stays cheap.
"""
