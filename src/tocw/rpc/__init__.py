"""tocw.rpc: JSON-RPC 2.0 for every tocw process.

messages (wire types, strict parsing, serialization) and dispatch (a method registry answering
text with text) are sans-I/O, so the enclave's trusted RPC and tests use them without sockets;
client is the asyncio websocket client the worker, the CLI and the SDK use to talk to
parentchain nodes and to workers. errors holds the exception tree and every error code.
"""
