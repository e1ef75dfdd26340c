"""Benchmark of metadata-driven extrinsic decoding on the worker's block-import path.

A signed EnclaveBridge.invoke with a 384-byte ciphertext (one RSA-3072 block), built and
decoded with the dev chain's metadata. Target (task brief): the fast path (`call_index_of`,
then `decode_call_args`) well under 100 µs per extrinsic. Also times the full decode, a
non-matching extrinsic skipped by index only, and scalecodec on the same bytes for scale.

    .venv/bin/python bench/extrinsic.py [--iterations 20000] [--metadata FILE]

`--metadata` takes a file with SCALE or 0x-hex `state_getMetadata` output of another chain
that has EnclaveBridge; by default the dev chain's runtime provides it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset

from tocw.chain.runtime import Runtime, RuntimeConfig
from tocw.primitives.extrinsic import (
    Era,
    build_signed_extrinsic,
    call_index_of,
    decode_call_args,
    decode_extrinsic,
)
from tocw.primitives.keys import Keypair
from tocw.primitives.metadata import RuntimeMetadata


def load_metadata(path: str | None) -> RuntimeMetadata:
    if path is None:
        return RuntimeMetadata.from_bytes(Runtime(RuntimeConfig()).metadata())
    raw = Path(path).read_bytes()
    if raw.startswith(b"0x"):
        return RuntimeMetadata.from_hex(raw.decode().strip())
    return RuntimeMetadata.from_bytes(raw)


def per_call_us(fn: Callable[[], object], iterations: int) -> float:
    fn()  # warm the codec caches
    t0 = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - t0) / iterations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--metadata", help="file with state_getMetadata output (default: dev)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    md = load_metadata(args.metadata)
    t1 = time.perf_counter()
    md.compile_all()
    t2 = time.perf_counter()
    print(f"metadata: {md}")
    print(f"  load (scalecodec, once): {(t1 - t0) * 1e3:.1f} ms")
    print(f"  compile every type: {(t2 - t1) * 1e3:.1f} ms")

    signer = Keypair.from_uri("//Alice")
    call = md.encode_call(
        "EnclaveBridge", "invoke", {"request": {"shard": bytes(32), "cyphertext": bytes(384)}}
    )
    era = Era.mortal(64, 1000)

    def build(call: bytes) -> bytes:
        return build_signed_extrinsic(
            md,
            call,
            signer,
            nonce=42,
            genesis_hash=bytes(32),
            spec_version=1,
            transaction_version=1,
            era=era,
            birth_hash=bytes(32),
        )

    xt = build(call)
    other = build(md.encode_call("System", "remark", {"remark": bytes(100)}))
    invoke = md.call_index("EnclaveBridge", "invoke")
    n = args.iterations
    print(f"signed EnclaveBridge.invoke, {len(xt)} bytes, {n} iterations:")
    fast = per_call_us(lambda: call_index_of(md, xt) == invoke and decode_call_args(md, xt), n)
    print(f"  fast path (call_index_of + decode_call_args): {fast:6.1f} µs")
    skip = per_call_us(lambda: call_index_of(md, other), n)
    print(f"  call_index_of only (skip a non-match):        {skip:6.1f} µs")
    full = per_call_us(lambda: decode_extrinsic(md, xt), n)
    print(f"  decode_extrinsic (everything + hash):         {full:6.1f} µs")
    signing = per_call_us(lambda: build(call), max(n // 20, 1))
    print(f"  build_signed_extrinsic (sr25519 signing):     {signing:6.1f} µs")

    config = RuntimeConfigurationObject(ss58_format=42)
    config.update_type_registry(load_type_registry_preset("core"))
    metadata = config.create_scale_object("MetadataVersioned", data=ScaleBytes(md.to_bytes()))
    metadata.decode()
    config.add_portable_registry(metadata)

    def reference() -> object:
        obj = config.create_scale_object("Extrinsic", data=ScaleBytes(xt), metadata=metadata)
        return obj.decode()

    ref = per_call_us(reference, max(n // 20, 1))
    print(f"  scalecodec Extrinsic decode (reference):      {ref:6.1f} µs")
    verdict = "OK" if fast < 100 else "TOO SLOW"
    print(f"fast path target < 100 µs: {verdict} ({ref / fast:.0f}x faster than scalecodec)")


if __name__ == "__main__":
    main()
