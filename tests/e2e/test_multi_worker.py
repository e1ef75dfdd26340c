"""Several workers per shard, with real processes: `tocw chain --dev` and `tocw worker run --dev`.

The proof of issue 7, in file order on one chain (module fixture): worker A serves the shard
and executes 20 mixed trusted calls; worker B starts later, gets the shielding key from A over
mutually attested TLS, replays the parentchain from the shard's creation block and reaches A's
state root without ever confirming a replayed block; 20 more calls encrypted alternately with
A's and B's key are confirmed by both with equal Merkle roots; an unshield with both up pays
once; `tocw list-workers` shows both; A is killed, the client keeps working through B, and A
catches up after a restart; a worker built with another STF (another MRENCLAVE) is refused the
key; a data dir holding a key of its own refuses to join; a restarted joiner keeps its
confirmation start.

tocw's own async clients are used (tocw.parentchain.client for the chain, tocw.client.worker for
the trusted RPC), and processes are run as users run them, through tocw.cli.devnet's process
helper. Calls of one wave are submitted together (one L1 sender per trusted sender, so each
sender's trusted nonces stay in order), so 20 calls take a few blocks, not 20 round trips.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tocw.chain.testing import launch_dev_chain
from tocw.cli.devnet import ManagedProcess, tocw_command
from tocw.client.calls import free_balance_getter, nonce_getter
from tocw.client.worker import StateRoot, Worker
from tocw.parentchain.client import ParentchainClient
from tocw.primitives.events import decode_events, extrinsic_succeeded
from tocw.primitives.extrinsic import decode_extrinsic
from tocw.primitives.hashing import blake2_256, trusted_calls_merkle_root
from tocw.primitives.keys import Keypair
from tocw.primitives.metadata import RuntimeMetadata
from tocw.primitives.scale import U32, U128
from tocw.primitives.shielding import ShieldingPublicKey
from tocw.primitives.ss58 import ss58_encode
from tocw.primitives.trusted import (
    ACCOUNT_ID,
    BASE_CODECS,
    BalanceSetBalance,
    BalanceTransfer,
    BalanceUnshield,
    IndirectCall,
    TrustedCallSigned,
    sign_call,
)
from tocw.primitives.types import AccountId, Balance, MrEnclave, Nonce, ShardId
from tocw.worker.config import load_config
from tocw.worker.service import open_enclave

pytestmark = pytest.mark.e2e

T = TypeVar("T")
BLOCK_TIME = 0.5
START_TIMEOUT = 60.0
WAIT = 45.0
POLL = 0.2
UNIT = 10**12
CODECS = BASE_CODECS
BRIDGE = "EnclaveBridge"
CONFIRM = "confirm_processed_parentchain_block"

# Trusted (L2) accounts; //Alice is the shard's root. L1 senders never include //Alice (the
# workers' --dev funding signs with it) nor //Ferdie (the unshield beneficiary, so its L1
# balance moves only by payouts).
ALICE, BOB, CHARLIE, DAVE = (
    Keypair.from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave")
)
L1_BOB, L1_CHARLIE, L1_DAVE, L1_EVE = (
    Keypair.from_uri(f"//{n}") for n in ("Bob", "Charlie", "Dave", "Eve")
)
FERDIE = Keypair.from_uri("//Ferdie").account_id


# -- processes ------------------------------------------------------------------------------------


@dataclass
class WorkerRun:
    """One `tocw worker run` process and what it announced."""

    name: str
    data_dir: Path
    process: ManagedProcess

    def wait_for(self, key: str, timeout: float = START_TIMEOUT) -> str:
        return self.process.wait_for(key, time.monotonic() + timeout)

    @property
    def url(self) -> str:
        return self.process.announced()["trusted-rpc"]

    @property
    def signer(self) -> bytes:
        return bytes.fromhex(self.process.announced()["signer"].split()[1].removeprefix("0x"))

    def log(self) -> str:
        return self.process.stderr_path.read_text("utf-8", "replace")

    def kill(self) -> None:
        self.process.proc.send_signal(signal.SIGKILL)
        self.process.proc.wait(15)

    def alive(self) -> bool:
        return self.process.proc.poll() is None


@dataclass
class Net:
    """The chain, the workers by name, the shard, and what the tests learnt along the way."""

    root: Path
    url: str
    workers: dict[str, WorkerRun] = field(default_factory=dict)
    runs: list[WorkerRun] = field(default_factory=list)
    shard: ShardId = field(default_factory=lambda: ShardId(b""))
    mrenclave: MrEnclave = field(default_factory=lambda: MrEnclave(b""))
    # confirmed block number -> signer -> Merkle roots, from every block scanned so far
    confirmations: dict[int, dict[bytes, set[bytes]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(set))
    )
    scanned: int = 0
    facts: dict[str, Any] = field(default_factory=dict)

    def spawn(self, name: str, *extra: str, data_dir: str | None = None) -> WorkerRun:
        """Start `tocw worker run --dev` on free ports; returns at once."""
        data = self.root / (data_dir or name)
        run_no = sum(1 for r in self.runs if r.name == name)
        log_name = f"{name}-{run_no}"
        args = [
            "worker",
            "run",
            "--dev",
            "--node-url",
            self.url,
            "--data-dir",
            str(data),
            "--trusted-port",
            "0",
            "--mu-ra-port",
            "0",
            "--health-port",
            "0",
            "--metrics-port",
            "0",
            *extra,
        ]
        out, err = self.root / f"{log_name}.out", self.root / f"{log_name}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen(
                tocw_command(*args), stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env
            )
        run = WorkerRun(name, data, ManagedProcess(log_name, proc, out, err))
        self.runs.append(run)
        self.workers[name] = run
        return run

    def start(self, name: str, *extra: str) -> WorkerRun:
        """A worker that is registered and in sync."""
        run = self.spawn(name, *extra)
        run.wait_for("initialized")
        return run

    def stop_all(self) -> None:
        for run in self.runs:
            if run.alive():
                run.process.stop()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("multi-worker")
    with launch_dev_chain(root, block_time=BLOCK_TIME, finality_delay=0.1) as chain:
        network = Net(root, chain.url)
        try:
            a = network.start("A")
            network.shard = ShardId(bytes.fromhex(a.process.announced()["shard"][2:]))
            network.mrenclave = MrEnclave(bytes.fromhex(a.process.announced()["mrenclave"][2:]))
            yield network
        finally:
            network.stop_all()


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def eventually(
    check: Callable[[], Awaitable[T | None]], what: str, timeout: float = WAIT
) -> T:
    """The first non-None result of `check`, polled until `timeout` (then AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(POLL)


# -- the chain side -------------------------------------------------------------------------------


Submission = tuple[Keypair, str, str, dict[str, Any]]


async def submit_wave(client: ParentchainClient, items: list[Submission]) -> list[int]:
    """Sign and submit all, each sender's in order; the block numbers that included them."""
    md = await client.metadata()
    nonces: dict[bytes, int] = {}
    watches = []
    for signer, pallet, name, args in items:
        account = bytes(signer.public_key)
        if account not in nonces:
            nonces[account] = int(await client.account_next_index(AccountId(account)))
        xt = await client.sign(md.encode_call(pallet, name, args), signer, nonce=nonces[account])
        nonces[account] += 1
        watches.append(await client.submit_and_watch(xt))
    try:
        statuses = await asyncio.gather(*(w.wait_for("inBlock", WAIT) for w in watches))
    finally:
        for watch in watches:
            await watch.close()
    numbers = []
    for status in statuses:
        assert status.block_hash is not None
        numbers.append(int((await client.header(status.block_hash)).number))
    return numbers


async def scan_confirmations(net: Net, client: ParentchainClient, md: RuntimeMetadata) -> int:
    """Read the successful confirmations of the shard in blocks not scanned yet; the finalized
    head they were read to."""
    head = int((await client.finalized_header()).number)
    for number in range(net.scanned + 1, head + 1):
        block_hash = await client.block_hash(number)
        block = await client.block(block_hash)
        events = decode_events(md, await client.events_raw(block_hash))
        for index, raw in enumerate(block.block.extrinsics):
            xt = decode_extrinsic(md, raw)
            if (xt.call.pallet, xt.call.name) != (BRIDGE, CONFIRM):
                continue
            if xt.call.args["shard"] != bytes(net.shard):
                continue
            if extrinsic_succeeded(events, index) is not True:
                continue
            confirmed = int(xt.call.args["block_number"])
            root = bytes(xt.call.args["trusted_calls_merkle_root"])
            net.confirmations[confirmed][bytes(xt.signer)].add(root)
        net.scanned = number
    return head


async def confirmed_by(
    net: Net, client: ParentchainClient, signers: list[bytes], block: int
) -> None:
    """Wait until each of `signers` confirmed `block`."""
    md = await client.metadata()

    async def check() -> bool | None:
        await scan_confirmations(net, client, md)
        done = all(s in net.confirmations.get(block, {}) for s in signers)
        return True if done else None

    await eventually(check, f"confirmations of block #{block}")


async def block_leaves(
    client: ParentchainClient, net: Net, number: int, known: dict[bytes, TrustedCallSigned]
) -> bytes:
    """The trusted_calls_merkle_root a block must be confirmed with: its invokes of our calls,
    in block order (every call in `known` is one the STF accepts)."""
    md = await client.metadata()
    block = await client.block(await client.block_hash(number))
    leaves = []
    for raw in block.block.extrinsics:
        xt = decode_extrinsic(md, raw)
        if (xt.call.pallet, xt.call.name) != (BRIDGE, "invoke"):
            continue
        signed = known.get(bytes(xt.call.args["request"]["cyphertext"]))
        if signed is not None:
            leaves.append(CODECS.call_signed.encode(signed))
    return trusted_calls_merkle_root(leaves)


async def executed_unshields(client: ParentchainClient, call_hash: bytes) -> int:
    """EnclaveBridge.ExecutedUnshieldCalls[call_hash]: how many unshield_funds arrived for it."""
    md = await client.metadata()
    key = md.storage_key(BRIDGE, "ExecutedUnshieldCalls", call_hash)
    return int(md.decode_storage(BRIDGE, "ExecutedUnshieldCalls", await client.storage(key)) or 0)


async def l1_free(client: ParentchainClient, account: bytes) -> int:
    md = await client.metadata()
    info = md.decode_storage(
        "System", "Account", await client.storage(md.storage_key("System", "Account", account))
    )
    return int(info["data"]["free"])


# -- the trusted side -----------------------------------------------------------------------------


def signed(net: Net, call: Any, nonce: int, signer: Keypair) -> TrustedCallSigned:
    return sign_call(CODECS, call, Nonce(nonce), net.mrenclave, net.shard, signer)


def invoke(
    l1: Keypair,
    key: ShieldingPublicKey,
    call: TrustedCallSigned,
    net: Net,
    known: dict[bytes, TrustedCallSigned] | None = None,
) -> Submission:
    cyphertext = key.encrypt(CODECS.operation.encode(IndirectCall(call)))
    if known is not None:
        known[cyphertext] = call
    request = {"shard": bytes(net.shard), "cyphertext": cyphertext}
    return (l1, BRIDGE, "invoke", {"request": request})


async def shielding_key(url: str) -> str:
    async with Worker(url) as worker:
        return await worker.shielding_key_json()


async def balances(url: str, net: Net, *who: Keypair) -> list[int]:
    async with Worker(url) as worker:
        out = []
        for account in who:
            raw = await worker.execute_getter(net.shard, free_balance_getter(account))
            out.append(0 if raw is None else U128.decode(raw))
        return out


async def nonce_of(url: str, net: Net, who: Keypair) -> int:
    async with Worker(url) as worker:
        raw = await worker.execute_getter(net.shard, nonce_getter(who))
        return 0 if raw is None else U32.decode(raw)


async def state_root(url: str, net: Net) -> StateRoot:
    async with Worker(url) as worker:
        return await worker.state_root(net.shard)


async def same_state(net: Net, *urls: str) -> StateRoot:
    """Poll the workers until they report the same last processed block; their roots there
    must be equal (each block changes the root: Timestamp.set)."""

    async def check() -> StateRoot | None:
        roots = await asyncio.gather(*(state_root(u, net) for u in urls))
        if len({r.block_hash for r in roots}) != 1:
            return None
        assert len({r.state_root for r in roots}) == 1, roots
        return roots[0]

    return await eventually(check, "the workers at the same block", timeout=WAIT)


# -- the proof ------------------------------------------------------------------------------------


def test_multi_worker_joiner_provisions_replays_and_matches(net: Net) -> None:
    """B starts after 20 mixed calls: it gets the key from A, replays from the shard's creation
    block, reaches A's state root, and confirms no replayed block."""
    a = net.workers["A"]
    sent: list[TrustedCallSigned] = []

    def call(c: Any, nonce: int, signer: Keypair) -> TrustedCallSigned:
        sent.append(signed(net, c, nonce, signer))
        return sent[-1]

    def transfer(frm: Keypair, to: Keypair, amount: int, nonce: int) -> TrustedCallSigned:
        value = Balance(amount * UNIT)
        return call(BalanceTransfer(frm.account_id, to.account_id, value), nonce, frm)

    def set_balance(root: Keypair, amount: int, nonce: int) -> TrustedCallSigned:
        value = Balance(amount * UNIT)
        return call(
            BalanceSetBalance(root.account_id, root.account_id, value, Balance(0)), nonce, root
        )

    async def scenario() -> None:
        client = await ParentchainClient.connect(net.url)
        try:
            key = ShieldingPublicKey.from_json(await shielding_key(a.url))
            ferdie_before = await l1_free(client, bytes(FERDIE))
            # wave 1: the root credits Alice; Eve shields 10 TEER to L2 Dave
            shield = {
                "shard": bytes(net.shard),
                "incognito_account_encrypted": key.encrypt(ACCOUNT_ID.encode(DAVE.account_id)),
                "amount": 10 * UNIT,
            }
            wave1 = [
                invoke(L1_BOB, key, set_balance(ALICE, 1000, 0), net),
                (L1_EVE, BRIDGE, "shield_funds", shield),
            ]
            await submit_wave(client, wave1)
            # wave 2: Alice pays out (an overdraft fails but bumps her nonce), Dave transfers
            # and unshields 1 TEER to Ferdie's L1 account, Eve sends garbage and a stale nonce
            # (both rejected: no state change, no Merkle leaf)
            unshield_value = BalanceUnshield(DAVE.account_id, FERDIE, Balance(UNIT), net.shard)
            garbage = {"request": {"shard": bytes(net.shard), "cyphertext": os.urandom(384)}}
            wave2 = [
                invoke(L1_BOB, key, transfer(ALICE, BOB, 100, 1), net),
                invoke(L1_BOB, key, transfer(ALICE, CHARLIE, 100, 2), net),
                invoke(L1_BOB, key, transfer(ALICE, DAVE, 5, 3), net),
                invoke(L1_BOB, key, transfer(ALICE, BOB, 10**7, 4), net),
                invoke(L1_BOB, key, transfer(ALICE, BOB, 1, 5), net),
                invoke(L1_DAVE, key, transfer(DAVE, CHARLIE, 2, 0), net),
                invoke(L1_DAVE, key, call(unshield_value, 1, DAVE), net),
                (L1_EVE, BRIDGE, "invoke", garbage),
                invoke(L1_EVE, key, transfer(ALICE, BOB, 7, 0), net),
            ]
            unshield = sent[-2]
            await submit_wave(client, wave2)
            # wave 3: everyone spends what waves 1-2 gave them; Bob's set_balance is refused
            # (he is not the root) but bumps his nonce
            wave3 = [
                invoke(L1_CHARLIE, key, transfer(BOB, CHARLIE, 10, 0), net),
                invoke(L1_CHARLIE, key, transfer(BOB, CHARLIE, 10, 1), net),
                invoke(L1_CHARLIE, key, transfer(BOB, ALICE, 10, 2), net),
                invoke(L1_CHARLIE, key, set_balance(BOB, 1, 3), net),
                invoke(L1_DAVE, key, transfer(CHARLIE, DAVE, 1, 0), net),
                invoke(L1_DAVE, key, transfer(CHARLIE, DAVE, 1, 1), net),
                invoke(L1_DAVE, key, transfer(CHARLIE, BOB, 1, 2), net),
                invoke(L1_DAVE, key, transfer(DAVE, ALICE, 1, 2), net),
                invoke(L1_DAVE, key, transfer(DAVE, BOB, 1, 3), net),
                invoke(L1_DAVE, key, transfer(DAVE, CHARLIE, 1, 4), net),
                invoke(L1_EVE, key, transfer(ALICE, BOB, 1, 6), net),
            ]
            last = max(await submit_wave(client, wave3))
            assert len(sent) == 20
            await confirmed_by(net, client, [a.signer], last)
            expected = [804 * UNIT, 74 * UNIT, 120 * UNIT, 11 * UNIT]
            assert await balances(a.url, net, ALICE, BOB, CHARLIE, DAVE) == expected

            b = net.spawn("B")
            b.wait_for("initialized")
            assert b.process.announced()["provisioned-from"] == a.process.announced()["mu-ra"]
            record = json.loads((b.data_dir / "join.json").read_text())
            net.facts["b_confirm_from"] = record["confirm_from"]
            assert await shielding_key(b.url) == key.to_json()
            same = await same_state(net, a.url, b.url)
            assert same.block_number >= last
            assert await balances(b.url, net, ALICE, BOB, CHARLIE, DAVE) == expected
            # B sent the replayed unshield again; the pallet paid it once
            call_hash = blake2_256(CODECS.call_signed.encode(unshield))
            await eventually(
                lambda: _at_least(executed_unshields(client, call_hash), 2),
                "B's unshield_funds for the replayed unshield",
            )
            assert await l1_free(client, bytes(FERDIE)) == ferdie_before + UNIT
            # no confirmation of a replayed block: B's first is its confirmation start
            await confirmed_by(net, client, [b.signer], record["confirm_from"])
            by_b = [n for n, signers in net.confirmations.items() if b.signer in signers]
            assert min(by_b) == record["confirm_from"] > last
            assert record["creation_block"] == min(net.confirmations)
        finally:
            await client.close()

    run(scenario())


async def _at_least(value: Awaitable[int], wanted: int) -> int | None:
    got = await value
    return got if got >= wanted else None


def test_multi_worker_calls_through_either_worker_confirmed_by_both(net: Net) -> None:
    """20 calls encrypted alternately with A's and B's key: both workers confirm every block
    with the same Merkle root (the one of the calls in it), and their state roots agree."""
    a, b = net.workers["A"], net.workers["B"]

    async def scenario() -> None:
        client = await ParentchainClient.connect(net.url)
        try:
            keys = [await shielding_key(a.url), await shielding_key(b.url)]
            assert keys[0] == keys[1]  # one shard, one key
            key_of = [ShieldingPublicKey.from_json(k) for k in keys]
            senders = [
                (ALICE, BOB, L1_BOB),
                (BOB, CHARLIE, L1_CHARLIE),
                (CHARLIE, DAVE, L1_DAVE),
                (DAVE, ALICE, L1_EVE),
            ]
            nonces = {frm.public_key: await nonce_of(b.url, net, frm) for frm, _, _ in senders}
            known: dict[bytes, TrustedCallSigned] = {}
            wave = []
            for i in range(20):
                frm, to, l1 = senders[i % 4]
                call = signed(
                    net,
                    BalanceTransfer(frm.account_id, to.account_id, Balance(UNIT)),
                    nonces[frm.public_key],
                    frm,
                )
                nonces[frm.public_key] += 1
                wave.append(invoke(l1, key_of[i % 2], call, net, known))
            included = await submit_wave(client, wave)
            last = max(included)
            await confirmed_by(net, client, [a.signer, b.signer], last)
            for number in range(int(net.facts["b_confirm_from"]), last + 1):
                await confirmed_by(net, client, [a.signer, b.signer], number)
                roots = net.confirmations[number]
                assert roots[a.signer] == roots[b.signer], number
                assert len(roots[a.signer]) == 1, number
            for number in set(included):
                expected = await block_leaves(client, net, number, known)
                assert net.confirmations[number][a.signer] == {expected}
                assert expected != bytes(32)
            await same_state(net, a.url, b.url)
            # every transfer executed once, whichever key encrypted it
            for frm, _, _ in senders:
                assert await nonce_of(a.url, net, frm) == nonces[frm.public_key]
        finally:
            await client.close()

    run(scenario())


def test_multi_worker_unshield_with_both_up_pays_once(net: Net) -> None:
    """Both workers send unshield_funds for the same call; the beneficiary gets 1 TEER once."""

    async def scenario() -> None:
        client = await ParentchainClient.connect(net.url)
        try:
            b = net.workers["B"]
            key = ShieldingPublicKey.from_json(await shielding_key(b.url))
            before = await l1_free(client, bytes(FERDIE))
            nonce = await nonce_of(b.url, net, BOB)
            unshield = signed(
                net, BalanceUnshield(BOB.account_id, FERDIE, Balance(UNIT), net.shard), nonce, BOB
            )
            await submit_wave(client, [invoke(L1_CHARLIE, key, unshield, net)])
            call_hash = blake2_256(CODECS.call_signed.encode(unshield))
            await eventually(
                lambda: _at_least(executed_unshields(client, call_hash), 2),
                "unshield_funds from both workers",
            )
            assert await executed_unshields(client, call_hash) == 2
            assert await l1_free(client, bytes(FERDIE)) == before + UNIT
        finally:
            await client.close()

    run(scenario())


def test_multi_worker_list_workers_shows_both(net: Net) -> None:
    """`tocw list-workers` lists A and B with their worker URLs."""
    result = subprocess.run(
        tocw_command("list-workers", "--node-url", net.url, "--json"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    listed = {w["account"]: w for w in json.loads(result.stdout)}
    for name in ("A", "B"):
        worker = net.workers[name]
        entry = listed[ss58_encode(AccountId(worker.signer))]
        assert entry["url"] == worker.url
        assert entry["mrenclave"] == "0x" + net.mrenclave.hex()


def test_multi_worker_survives_a_killed_worker_and_it_catches_up(net: Net) -> None:
    """kill -9 A: a client keeps working through B alone; A restarted catches up to B."""
    a, b = net.workers["A"], net.workers["B"]
    a.kill()

    async def through_b() -> tuple[int, list[int]]:
        client = await ParentchainClient.connect(net.url)
        try:
            key = ShieldingPublicKey.from_json(await shielding_key(b.url))
            before = await balances(b.url, net, CHARLIE)
            nonce = await nonce_of(b.url, net, ALICE)
            call = signed(
                net,
                BalanceTransfer(ALICE.account_id, CHARLIE.account_id, Balance(3 * UNIT)),
                nonce,
                ALICE,
            )
            known: dict[bytes, TrustedCallSigned] = {}
            [number] = await submit_wave(client, [invoke(L1_BOB, key, call, net, known)])
            await confirmed_by(net, client, [b.signer], number)
            assert net.confirmations[number][b.signer] == {
                await block_leaves(client, net, number, known)
            }
            after = await balances(b.url, net, CHARLIE)
            assert after == [before[0] + 3 * UNIT]
            return number, after
        finally:
            await client.close()

    number, charlie = run(through_b())
    restarted = net.start("A")
    assert restarted.signer == a.signer  # same data dir, same enclave

    async def caught_up() -> None:
        same = await same_state(net, restarted.url, b.url)
        assert same.block_number >= number
        assert await balances(restarted.url, net, CHARLIE) == charlie

    run(caught_up())


def test_multi_worker_other_mrenclave_is_refused_the_key(net: Net) -> None:
    """A worker built with another STF (balances + auction: another MRENCLAVE) asking for the
    shard's key is refused by the attested handshake: it exits with the reason, holds no key,
    and no giver gave it one."""
    c = net.spawn("C", "--modules", "balances,auction", "--shard", "0x" + net.shard.hex())
    try:
        code = c.process.proc.wait(START_TIMEOUT)
    finally:
        c.process.stop()
    log = c.log()
    assert code == 1, log
    assert c.process.announced()["mrenclave"] != "0x" + net.mrenclave.hex()
    assert "the peer runs other code" in log, log
    for name in ("A", "B"):  # every worker of the shard was asked, none gave
        assert net.workers[name].process.announced()["mu-ra"] in log
    assert not (c.data_dir / "sealed" / "shielding-key.sealed").exists()
    signer = "0x" + c.signer.hex()
    for name in ("A", "B"):
        assert f"gave the shielding key to {signer}" not in net.workers[name].log()


def test_multi_worker_own_key_refuses_to_join(net: Net) -> None:
    """A data dir whose enclave made a key of its own (e.g. copied from another deployment)
    refuses to join the shard, before it pays a fee or registers."""
    data = net.root / "D"
    with open_enclave(load_config({"data_dir": str(data)})):  # creates and seals a key
        pass
    d = net.spawn("D")
    try:
        code = d.process.proc.wait(START_TIMEOUT)
    finally:
        d.process.stop()
    log = d.log()
    assert code == 1, log
    assert "already holds a shielding key of its own" in log, log
    assert "--dev: funding" not in log and "registering the enclave" not in log


def test_multi_worker_restarted_joiner_keeps_its_confirmation_start(net: Net) -> None:
    """B restarted resumes its shard with the confirmation start it chose when it joined."""
    b = net.workers["B"]
    assert b.process.stop() == 0
    restarted = net.start("B")
    start = int(net.facts["b_confirm_from"])
    assert re.search(rf"confirming parentchain blocks from #{start} on", restarted.log())
    assert "provisioned-from" not in restarted.process.announced()
    run(same_state(net, net.workers["A"].url, restarted.url))


def test_multi_worker_all_confirmations_agree(net: Net) -> None:
    """Over the whole run (replay, restarts, late confirmations included), every confirmation
    of a block carries the same trusted_calls_merkle_root, whichever worker sent it."""

    async def scan() -> None:
        client = await ParentchainClient.connect(net.url)
        try:
            await scan_confirmations(net, client, await client.metadata())
        finally:
            await client.close()

    run(scan())
    signers = {net.workers["A"].signer, net.workers["B"].signer}
    both = 0
    for number, by_signer in net.confirmations.items():
        assert set(by_signer) <= signers, number
        roots = set().union(*by_signer.values())
        assert len(roots) == 1, (number, by_signer)
        both += len(by_signer) == 2
    assert both >= 10  # blocks both workers confirmed
