"""Worker throughput: indirect invocations executed per second, and catch-up blocks per second.

Not a timed test: it prints what it measured and the ratios to the issue's targets, all from
one run on this machine.

1. Invocations: blocks full of `EnclaveBridge.invoke` (each an RSA-3072 ciphertext of a signed
   balance_transfer) are imported by one real worker process; the invocations executed per
   second are divided by the raw RSA-3072 OAEP-SHA256 decryptions per second of this machine
   (measured here, same key size, same library). Target: >= 0.5.
2. Catch-up: the same worker then imports finalized empty blocks (a Timestamp.set each) from a
   local dev chain that is `--empty-blocks` ahead. Target: >= 500 blocks/s (Integritee's worker
   syncs about 230 blocks/s from a local node).

How the chain is pre-built: a dev chain with instant seal lets the worker fund itself, register
and create its shard; then, with the node stopped, this script appends the invoke blocks and the
empty blocks straight into the node's database through the dev chain's own `Chain` (the same
runtime, state roots and GRANDPA justifications the node makes), and restarts the node with a
one-hour block time so that the chain stands still while the worker catches up. Rates come from
the worker's own log timestamps (one line per committed block), so process start-up and
registration checks are not counted.

    .venv/bin/python bench/worker.py [--empty-blocks 5000] [--invoke-blocks 20]
                                     [--invokes-per-block 100] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tocw.chain.node import DB_FILE, Chain
from tocw.chain.runtime import Runtime
from tocw.chain.storage import ChainStore
from tocw.parentchain.client import ParentchainClient
from tocw.primitives.extrinsic import build_signed_extrinsic
from tocw.primitives.hashing import storage_prefix
from tocw.primitives.keys import Keypair
from tocw.primitives.metadata import RuntimeMetadata
from tocw.primitives.scale import U64
from tocw.primitives.shielding import ShieldingKey, ShieldingPublicKey
from tocw.primitives.trusted import (
    BASE_CODECS,
    BalanceSetBalance,
    BalanceTransfer,
    IndirectCall,
    sign_call,
)
from tocw.primitives.types import Balance, MrEnclave, Nonce, ShardId

INVOKE_RATIO_TARGET = 0.5
CATCH_UP_TARGET = 500.0
INTEGRITEE_CATCH_UP = 230.0
START_TIMEOUT = 120.0
EXTERNAL_URL = "wss://127.0.0.1:1"  # fixed, so restarts never re-register on a frozen chain
LOG_LINE = re.compile(r"^(\S+ \S+) INFO tocw\.enclave\.api: imported block (\d+) ", re.M)


def tocw_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tocw.cli.main", *args]


def spawn(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with (
        open(log.with_suffix(".stdout"), "wb") as out,
        open(log.with_suffix(".stderr"), "wb") as err,
    ):
        return subprocess.Popen(cmd, stdout=out, stderr=err, env=env)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_line(proc: subprocess.Popen[bytes], log: Path, key: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    out = log.with_suffix(".stdout")
    while time.monotonic() < deadline:
        for line in out.read_text(errors="replace").splitlines():
            if line.startswith(key + ": "):
                return line.split(": ", 1)[1].strip()
        if proc.poll() is not None:
            err = log.with_suffix(".stderr").read_text(errors="replace")[-3000:]
            raise SystemExit(f"{log.name} exited with {proc.returncode}:\n{err}")
        time.sleep(0.05)
    raise SystemExit(f"{log.name} printed no {key!r} within {timeout} s")


def start_chain(base: Path, block_time: float, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    cmd = tocw_cmd(
        "chain",
        "--dev",
        "--ws-port",
        "0",
        "--block-time",
        str(block_time),
        "--base-path",
        str(base),
    )
    proc = spawn(cmd, log)
    return proc, wait_line(proc, log, "url", START_TIMEOUT)


def start_worker(url: str, data: Path, log: Path) -> subprocess.Popen[bytes]:
    cmd = tocw_cmd(
        "worker", "run", "--node-url", url, "--data-dir", str(data), "--dev",
        "--external-url", EXTERNAL_URL, "--trusted-port", "0", "--health-port", "0",
        "--metrics-port", "0", "--mu-ra-port", "0",
    )  # fmt: skip
    return spawn(cmd, log)


def printed(*args: str) -> str:
    result = subprocess.run(tocw_cmd(*args), capture_output=True, text=True, check=True)
    return result.stdout.strip()


async def chain_facts(url: str) -> tuple[bytes, bytes, int, int, int]:
    """Metadata, genesis, spec and transaction versions, //Alice's next nonce."""
    async with await ParentchainClient.connect(url) as client:
        metadata = bytes.fromhex((await client.call("state_getMetadata"))[2:])
        version = await client.runtime_version()
        alice = Keypair.from_uri("//Alice")
        nonce = int(await client.account_next_index(alice.account_id))
        genesis = bytes(await client.genesis_hash())
        return metadata, genesis, version.spec_version, version.transaction_version, nonce


def now_ms(chain: Chain) -> int:
    raw = chain.state().get(storage_prefix("Timestamp", "Now"))
    return 0 if raw is None else U64.decode(raw)


def append_blocks(base: Path, batches: list[list[bytes]], empty: int) -> tuple[int, int, int]:
    """Write blocks into the stopped node's database: one per batch of extrinsics (more if the
    runtime's limits split a batch), then `empty` empty ones, all finalized. Returns (first
    invoke block, last invoke block, last block)."""
    runtime = Runtime()
    store = ChainStore(base / DB_FILE, state_version=runtime.version.state_version)
    chain = Chain(runtime, store)
    chain.open()
    try:
        first = chain.best_number + 1
        timestamp = now_ms(chain)
        for batch in batches:
            for xt in batch:
                chain.submit(xt)
            while chain.pool.ready_in_order(1, 1 << 30):
                timestamp += 1000
                chain.produce_block(timestamp)
        last_invoke = chain.best_number
        for _ in range(empty):
            timestamp += 1000
            chain.produce_block(timestamp)
        while chain.finalize_next() is not None:
            pass
        return first, last_invoke, chain.best_number
    finally:
        store.close()


def import_times(stderr: Path) -> dict[int, float]:
    """Block number -> the time the worker logged its commit (seconds since the epoch)."""
    out = {}
    for stamp, number in LOG_LINE.findall(stderr.read_text(errors="replace")):
        when = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
        out[int(number)] = when.timestamp()
    return out


def rsa_decryptions_per_second(seconds: float = 2.0) -> float:
    key = ShieldingKey.generate()
    ciphertext = key.public_key().encrypt(secrets.token_bytes(200))
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        key.decrypt(ciphertext)
        count += 1
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--empty-blocks", type=int, default=5000)
    parser.add_argument("--invoke-blocks", type=int, default=20)
    parser.add_argument("--invokes-per-block", type=int, default=100)
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it (default: temp dir)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="tocw-bench-worker-"))
    work.mkdir(parents=True, exist_ok=True)
    base, data = work / "chain", work / "worker"
    try:
        return run(args, work, base, data)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, base: Path, data: Path) -> int:
    print("1/4 dev chain (instant seal) + worker: fund, register, create the shard ...")
    chain, url = start_chain(base, 0, work / "chain-setup")
    try:
        worker = start_worker(url, data, work / "worker-setup")
        try:
            wait_line(worker, work / "worker-setup", "initialized", START_TIMEOUT)
        finally:
            stop(worker)
        metadata, genesis, spec, tx_version, l1_nonce = asyncio.run(chain_facts(url))
    finally:
        stop(chain)

    print("2/4 building invoke blocks and empty blocks into the node's database ...")
    md = RuntimeMetadata.from_bytes(metadata)
    mrenclave = MrEnclave(
        bytes.fromhex(printed("worker", "mrenclave", "--data-dir", str(data))[2:])
    )
    shard = ShardId(bytes(mrenclave))
    key = ShieldingPublicKey.from_json(printed("worker", "shielding-key", "--data-dir", str(data)))
    alice, bob = Keypair.from_uri("//Alice"), Keypair.from_uri("//Bob")
    total = args.invoke_blocks * args.invokes_per_block
    calls: list[BalanceSetBalance | BalanceTransfer] = [
        BalanceSetBalance(alice.account_id, alice.account_id, Balance(10**15), Balance(0))
    ]
    calls += [
        BalanceTransfer(alice.account_id, bob.account_id, Balance(1)) for _ in range(total - 1)
    ]
    batches: list[list[bytes]] = []
    for n, call in enumerate(calls):
        signed = sign_call(BASE_CODECS, call, Nonce(n), mrenclave, shard, alice)
        cyphertext = key.encrypt(BASE_CODECS.operation.encode(IndirectCall(signed)))
        encoded = md.encode_call(
            "EnclaveBridge",
            "invoke",
            {"request": {"shard": bytes(shard), "cyphertext": cyphertext}},
        )
        xt = build_signed_extrinsic(
            md,
            encoded,
            alice,
            nonce=l1_nonce + n,
            genesis_hash=genesis,
            spec_version=spec,
            transaction_version=tx_version,
        )
        if n % args.invokes_per_block == 0:
            batches.append([])
        batches[-1].append(xt)
    t0 = time.perf_counter()
    first_invoke, last_invoke, last = append_blocks(base, batches, args.empty_blocks)
    print(
        f"    blocks #{first_invoke}..#{last_invoke} hold {total} invokes, "
        f"#{last_invoke + 1}..#{last} are empty ({time.perf_counter() - t0:.1f} s to build)"
    )

    print("3/4 worker catch-up from a frozen chain (block time 1 h) ...")
    chain, url = start_chain(base, 3600, work / "chain-run")
    try:
        worker = start_worker(url, data, work / "worker-run")
        try:
            wait_line(worker, work / "worker-run", "initialized", START_TIMEOUT + last / 50)
        finally:
            stop(worker)
    finally:
        stop(chain)
    times = import_times((work / "worker-run").with_suffix(".stderr"))
    missing = [n for n in (first_invoke, last_invoke, last) if n not in times]
    if missing:
        print(f"error: the worker log has no import of blocks {missing}")
        return 1
    start = times.get(first_invoke - 1, times[first_invoke])
    invoke_s = max(times[last_invoke] - start, 1e-3)
    empty_s = max(times[last] - times[last_invoke], 1e-3)
    invokes_per_s = total / invoke_s
    blocks_per_s = (last - last_invoke) / empty_s

    print("4/4 raw RSA-3072 OAEP-SHA256 decryptions on this machine ...")
    rsa_per_s = rsa_decryptions_per_second()

    ratio = invokes_per_s / rsa_per_s
    print()
    print(f"indirect invocations : {total} in {invoke_s:.2f} s = {invokes_per_s:8.1f} /s")
    print(f"raw RSA decryptions  : {rsa_per_s:8.1f} /s")
    print(f"  ratio              : {ratio:.2f}  (target >= {INVOKE_RATIO_TARGET}: "
          f"{'met' if ratio >= INVOKE_RATIO_TARGET else 'NOT met'})")  # fmt: skip
    print(f"catch-up, empty      : {last - last_invoke} blocks in {empty_s:.2f} s = "
          f"{blocks_per_s:8.1f} blocks/s")  # fmt: skip
    verdict = "met" if blocks_per_s >= CATCH_UP_TARGET else "NOT met"
    print(
        f"  ratio to target    : {blocks_per_s / CATCH_UP_TARGET:.2f}  (target "
        f"{CATCH_UP_TARGET:.0f}/s: {verdict}; Integritee ~{INTEGRITEE_CATCH_UP:.0f}/s -> "
        f"{blocks_per_s / INTEGRITEE_CATCH_UP:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
