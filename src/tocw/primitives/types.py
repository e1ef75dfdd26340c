"""Identifier types shared by every layer (PROTOCOL.md "Primitive types").

NewTypes over bytes/int so that an AccountId is never passed where a ShardId is expected; mypy
checks it, at no run-time cost.
"""

from typing import NewType

AccountId = NewType("AccountId", bytes)  # 32 bytes: sr25519 or ed25519 public key
ShardId = NewType("ShardId", bytes)  # H256; default shard = the worker's MRENCLAVE
MrEnclave = NewType("MrEnclave", bytes)  # 32 bytes: enclave measurement
BlockHash = NewType("BlockHash", bytes)  # H256
Balance = NewType("Balance", int)  # u128
Nonce = NewType("Nonce", int)  # u32 (Substrate "Index")
BlockNumber = NewType("BlockNumber", int)  # u32
Moment = NewType("Moment", int)  # u64 milliseconds

MAX_U32 = (1 << 32) - 1
MAX_U64 = (1 << 64) - 1
MAX_U128 = (1 << 128) - 1


def to_hex(data: bytes) -> str:
    """Lowercase 0x-prefixed hex, the only hex form on the wire (PROTOCOL.md)."""
    return "0x" + data.hex()


def from_hex(text: str) -> bytes:
    """Parse 0x-prefixed (or bare) hex; ValueError on anything else."""
    if text.startswith(("0x", "0X")):
        text = text[2:]
    return bytes.fromhex(text)
