"""The worker end to end, with real processes: `tocw chain --dev` and `tocw worker run --dev`.

substrate-interface 1.8.1 is the parentchain client; tocw.rpc.client.RpcClient over wss, pinned
to the worker's own certificate, is the trusted-RPC client. The flow of ARCHITECTURE.md "Data
flow": fetch and check the shielding key, send encrypted calls with EnclaveBridge.invoke, wait
for ProcessedParentchainBlock of the inclusion block with the Merkle root computed here, read
balances and nonces with trusted getters, shield from L1, unshield to L1 (paid once), and see
bad ciphertexts, bad signatures and stale nonces skipped while the next good call executes.
Then recovery: kill -9 mid-sync and restart gives the state root of a worker never killed,
with no call applied twice; a data dir never follows another chain.

The tests of the first part share one chain and one worker (module fixture) and run in file
order, each checking its own deltas. TLS: the first connection learns the worker's certificate
without verification (sim has no CA), the attestation is checked to bind that certificate's
key, and every later connection pins exactly that certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from substrateinterface import Keypair as L1Keypair
from substrateinterface import SubstrateInterface

from tocw.chain.testing import start_dev_chain, stop_process
from tocw.enclave.trusted_rpc import STATE_ROOT_CODEC, decode_result
from tocw.primitives.hashing import trusted_calls_merkle_root
from tocw.primitives.keys import Keypair
from tocw.primitives.scale import U32, U128, Bytes, Option, Str
from tocw.primitives.shielding import ShieldingPublicKey
from tocw.primitives.trusted import (
    ACCOUNT_ID,
    BASE_CODECS,
    REQUEST_CODEC,
    BalanceSetBalance,
    BalanceTransfer,
    BalanceUnshield,
    FreeBalance,
    IndirectCall,
    NonceGetter,
    Request,
    TrustedCallSigned,
    TrustedGetterOp,
    sign_call,
    sign_getter,
)
from tocw.primitives.types import Balance, MrEnclave, Nonce, ShardId
from tocw.rpc.client import RpcClient, pinned_certificate_context
from tocw.tee.attestation import ATTESTATION_CODEC, check_binding

pytestmark = pytest.mark.e2e

START_TIMEOUT = 90.0
PROCESSED_TIMEOUT = 45.0
CODECS = BASE_CODECS
ALICE = Keypair.from_uri("//Alice")
BOB = Keypair.from_uri("//Bob")
CHARLIE = Keypair.from_uri("//Charlie")
DAVE = Keypair.from_uri("//Dave")
EVE = Keypair.from_uri("//Eve")


# --- processes -----------------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """A `tocw worker run` subprocess and the lines it printed (key: value)."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    lines: dict[str, str] = field(default_factory=dict)

    def read_lines(self) -> dict[str, str]:
        for line in self.out.read_text(errors="replace").splitlines():
            key, sep, value = line.partition(": ")
            if sep:
                self.lines.setdefault(key.strip(), value.strip())
        return self.lines

    def stderr(self, limit: int = 6000) -> str:
        return self.err.read_text(errors="replace")[-limit:]

    def wait_for(self, key: str, timeout: float = START_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if key in self.read_lines():
                return self.lines[key]
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"worker exited with {self.proc.returncode} before printing {key!r}:\n"
                    + self.stderr()
                )
            time.sleep(0.05)
        raise AssertionError(f"worker printed no {key!r} in {timeout} s:\n{self.stderr()}")

    @property
    def trusted_rpc(self) -> str:
        return self.lines["trusted-rpc"]

    @property
    def health(self) -> str:
        return self.lines["health"]

    @property
    def metrics(self) -> str:
        return self.lines["metrics"]


def spawn_worker(
    log_dir: Path, name: str, node_url: str, data_dir: Path, *extra: str
) -> WorkerProcess:
    """Start `tocw worker run --dev` on free ports; returns at once (see wait_for)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out, err = log_dir / f"{name}.stdout", log_dir / f"{name}.stderr"
    cmd = [
        sys.executable,
        "-m",
        "tocw.cli.main",
        "worker",
        "run",
        "--node-url",
        node_url,
        "--data-dir",
        str(data_dir),
        "--dev",
        "--trusted-port",
        "0",
        "--health-port",
        "0",
        "--metrics-port",
        "0",
        "--mu-ra-port",
        "0",
        *extra,
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env)
    return WorkerProcess(proc, out, err)


@contextlib.contextmanager
def running_worker(
    log_dir: Path, name: str, node_url: str, data_dir: Path, *extra: str
) -> Iterator[WorkerProcess]:
    """A worker that is initialized (registered and in sync) for the block's duration."""
    worker = spawn_worker(log_dir, name, node_url, data_dir, *extra)
    try:
        worker.wait_for("initialized")
        yield worker
    finally:
        code = stop_process(worker.proc)
    # SIGTERM: the block in progress is committed and the worker exits cleanly
    assert code == 0, f"worker exited with {code} on SIGTERM:\n{worker.stderr()}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def chain_on_port(
    log_dir: Path, name: str, port: int, base_path: Path, block_time: float
) -> Iterator[str]:
    """`tocw chain --dev` on a fixed port (so a worker can reconnect to the same URL)."""
    out = log_dir / f"{name}.stdout"
    cmd = [
        sys.executable,
        "-m",
        "tocw.cli.main",
        "chain",
        "--dev",
        "--ws-port",
        str(port),
        "--block-time",
        str(block_time),
        "--base-path",
        str(base_path),
    ]
    with open(out, "wb") as fo, open(log_dir / f"{name}.stderr", "wb") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe)
    try:
        wait_until(lambda: "url: " in out.read_text() or proc.poll() is not None, 60.0, "the chain")
        assert proc.poll() is None, (log_dir / f"{name}.stderr").read_text()
        yield f"ws://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def health_json(worker: WorkerProcess) -> dict[str, Any]:
    status, body = http_get(worker.health + "/health")
    assert status == 200, body
    value: dict[str, Any] = json.loads(body)
    return value


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# --- the trusted RPC client ----------------------------------------------------------------------


class TrustedClient:
    """Synchronous calls to a worker's trusted RPC, pinned to its certificate."""

    def __init__(self, url: str) -> None:
        self.url = url
        host, port = url.removeprefix("wss://").rsplit(":", 1)
        # Trust on first use: learn the certificate, then check the attestation binds its key.
        self.certificate_pem = ssl.get_server_certificate((host, int(port)), timeout=10)
        self._context = pinned_certificate_context(self.certificate_pem)

    def tls_public_key_der(self) -> bytes:
        cert = x509.load_pem_x509_certificate(self.certificate_pem.encode())
        return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        async def go() -> Any:
            async with RpcClient(self.url, ssl_context=self._context, timeout=20) as rpc:
                return await rpc.request(method, params or [])

        return asyncio.run(go())

    def value(self, method: str, params: list[Any] | None = None) -> bytes:
        """The value of an Ok RpcReturnValue (AssertionError with the message otherwise)."""
        answer = decode_result(self.call(method, params))
        message = answer.error_message()
        assert message is None, f"{method} answered Error: {message}"
        return answer.value

    def getter(self, shard: ShardId, getter: Any, signer: Keypair) -> bytes | None:
        signed = sign_getter(CODECS, getter, signer)
        request = Request(shard, CODECS.getter.encode(TrustedGetterOp(signed)))
        raw = self.value("state_executeGetter", ["0x" + REQUEST_CODEC.encode(request).hex()])
        return Option(Bytes).decode(raw)

    def free_balance(self, shard: ShardId, who: Keypair) -> int:
        raw = self.getter(shard, FreeBalance(who.account_id), who)
        return 0 if raw is None else U128.decode(raw)

    def nonce(self, shard: ShardId, who: Keypair) -> int:
        raw = self.getter(shard, NonceGetter(who.account_id), who)
        return 0 if raw is None else U32.decode(raw)

    def state_root(self, shard: ShardId) -> tuple[int, bytes, bytes]:
        number, block_hash, root = STATE_ROOT_CODEC.decode(
            self.value("tocw_getStateRoot", ["0x" + bytes(shard).hex()])
        )
        return int(number), bytes(block_hash), bytes(root)


# --- the parentchain side ------------------------------------------------------------------------


def l1_keypair(uri: str) -> L1Keypair:
    return L1Keypair.create_from_uri(uri)


def l1_free(substrate: SubstrateInterface, account: bytes) -> int:
    info = substrate.query("System", "Account", ["0x" + account.hex()])
    return int(info.value["data"]["free"])


def submit(
    substrate: SubstrateInterface,
    signer: L1Keypair,
    pallet: str,
    name: str,
    params: dict[str, Any],
    *,
    wait: bool = True,
    nonce: int | None = None,
) -> Any:
    call = substrate.compose_call(pallet, name, params)
    xt = substrate.create_signed_extrinsic(call=call, keypair=signer, nonce=nonce)
    receipt = substrate.submit_extrinsic(xt, wait_for_inclusion=wait)
    if wait:
        assert receipt.is_success, receipt.error_message
    return receipt


def invoke_params(shard: ShardId, cyphertext: bytes) -> dict[str, Any]:
    return {"request": {"shard": "0x" + bytes(shard).hex(), "cyphertext": "0x" + cyphertext.hex()}}


def events_at(substrate: SubstrateInterface, block_hash: str) -> list[dict[str, Any]]:
    return [e.value for e in substrate.get_events(block_hash)]


def wait_processed(
    substrate: SubstrateInterface,
    shard: ShardId,
    block_hash: str,
    timeout: float = PROCESSED_TIMEOUT,
) -> dict[str, Any]:
    """The attributes of ProcessedParentchainBlock for `block_hash`, from a later block."""
    start = substrate.get_block_number(block_hash)
    next_number = start
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head = substrate.get_block_number(substrate.get_chain_finalised_head())
        while next_number <= head:
            h = substrate.get_block_hash(next_number)
            for event in events_at(substrate, h):
                if (event["module_id"], event["event_id"]) != (
                    "EnclaveBridge",
                    "ProcessedParentchainBlock",
                ):
                    continue
                attrs = event["attributes"]
                if attrs["block_hash"] == block_hash and attrs["shard"] == "0x" + shard.hex():
                    return dict(attrs)
            next_number += 1
        time.sleep(0.2)
    raise AssertionError(f"no ProcessedParentchainBlock for {block_hash} in {timeout} s")


def signed_call(
    mrenclave: MrEnclave, shard: ShardId, call: Any, nonce: int, signer: Keypair
) -> TrustedCallSigned:
    return sign_call(CODECS, call, Nonce(nonce), mrenclave, shard, signer)


def encrypt_call(key: ShieldingPublicKey, signed: TrustedCallSigned) -> bytes:
    return key.encrypt(CODECS.operation.encode(IndirectCall(signed)))


def merkle_root(*calls: TrustedCallSigned) -> str:
    return "0x" + trusted_calls_merkle_root([CODECS.call_signed.encode(c) for c in calls]).hex()


# --- the shared system ---------------------------------------------------------------------------


@dataclass
class System:
    url: str
    root: Path
    substrate: SubstrateInterface
    worker: WorkerProcess
    client: TrustedClient
    key: ShieldingPublicKey
    mrenclave: MrEnclave
    shard: ShardId

    def call(self, call: Any, nonce: int, signer: Keypair) -> TrustedCallSigned:
        return signed_call(self.mrenclave, self.shard, call, nonce, signer)

    def invoke(
        self, l1_signer: str, cyphertext: bytes, *, wait: bool = True, nonce: int | None = None
    ) -> Any:
        return submit(
            self.substrate,
            l1_keypair(l1_signer),
            "EnclaveBridge",
            "invoke",
            invoke_params(self.shard, cyphertext),
            wait=wait,
            nonce=nonce,
        )


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("worker-e2e")
    with start_dev_chain(root, block_time=1.0) as url:
        substrate = SubstrateInterface(url=url)
        try:
            with running_worker(root, "worker", url, root / "data") as worker:
                client = TrustedClient(worker.trusted_rpc)
                key_json = Str.decode(client.value("author_getShieldingKey"))
                mrenclave = MrEnclave(client.value("tocw_getMrenclave"))
                shard = ShardId(client.value("author_getShard"))
                yield System(
                    url,
                    root,
                    substrate,
                    worker,
                    client,
                    ShieldingPublicKey.from_json(key_json),
                    mrenclave,
                    shard,
                )
        finally:
            substrate.close()


# --- the flow ---------------------------------------------------------------------------------


def test_worker_e2e_startup_health_and_metrics(system: System) -> None:
    """The worker prints its identity, is initialized, and reports health and metrics."""
    lines = system.worker.read_lines()
    assert lines["mrenclave"] == "0x" + system.mrenclave.hex()
    assert lines["shard"] == "0x" + system.shard.hex()  # the default shard is the MRENCLAVE
    assert lines["tee"].startswith("sim") and "NOT SECURE" in lines["tee"]
    status, body = http_get(system.worker.health + "/is_initialized")
    assert status == 200, body
    status, body = http_get(system.worker.health + "/health")
    health = json.loads(body)
    assert status == 200 and health["isSecure"] is False and health["registered"] is True
    assert health["lag"] is not None and health["tee"] == "sim"
    status, text = http_get(system.worker.metrics + "/metrics")
    assert status == 200
    assert "tocw_imported_block_height" in text and "tocw_initialized 1.0" in text
    # registered on chain with its URL and the MRENCLAVE as Skip proof
    signer = lines["signer"].split()[0]
    enclave = system.substrate.query("Teerex", "SovereignEnclaves", [signer]).value
    assert enclave is not None
    sgx = enclave.get("Sgx", enclave)
    assert sgx["mr_enclave"] == "0x" + system.mrenclave.hex()


def test_worker_e2e_shielding_key_is_attested(system: System) -> None:
    """The attestation binds the shielding key clients encrypt to and the pinned TLS key."""
    client = system.client
    attestation = ATTESTATION_CODEC.decode(client.value("tocw_getAttestation"))
    key_json = Str.decode(client.value("author_getShieldingKey"))
    assert bytes(attestation.mrenclave) == system.mrenclave
    assert check_binding(
        attestation, attestation.signer_public_key, key_json, client.tls_public_key_der()
    )
    assert not check_binding(
        attestation, attestation.signer_public_key, key_json + " ", client.tls_public_key_der()
    )


def test_worker_e2e_invoke_set_balance_and_transfer(system: System) -> None:
    """Invoked calls execute, are confirmed with the right Merkle root, and show in getters."""
    set_balance = system.call(
        BalanceSetBalance(ALICE.account_id, ALICE.account_id, Balance(1_000), Balance(0)), 0, ALICE
    )
    receipt = system.invoke("//Alice", encrypt_call(system.key, set_balance))
    processed = wait_processed(system.substrate, system.shard, receipt.block_hash)
    assert processed["trusted_calls_merkle_root"] == merkle_root(set_balance)
    assert processed["block_number"] == system.substrate.get_block_number(receipt.block_hash)

    transfer = system.call(
        BalanceTransfer(ALICE.account_id, BOB.account_id, Balance(300)), 1, ALICE
    )
    receipt = system.invoke("//Alice", encrypt_call(system.key, transfer))
    processed = wait_processed(system.substrate, system.shard, receipt.block_hash)
    assert processed["trusted_calls_merkle_root"] == merkle_root(transfer)

    assert system.client.free_balance(system.shard, ALICE) == 700
    assert system.client.free_balance(system.shard, BOB) == 300
    assert system.client.nonce(system.shard, ALICE) == 2
    number, block_hash, root = system.client.state_root(system.shard)
    assert number >= system.substrate.get_block_number(receipt.block_hash)
    assert len(block_hash) == 32 and len(root) == 32


def test_worker_e2e_trusted_getter_needs_the_owner(system: System) -> None:
    """A trusted getter signed by someone else is refused, not answered."""
    signed = sign_getter(CODECS, FreeBalance(ALICE.account_id), BOB)
    request = Request(system.shard, CODECS.getter.encode(TrustedGetterOp(signed)))
    answer = decode_result(
        system.client.call("state_executeGetter", ["0x" + REQUEST_CODEC.encode(request).hex()])
    )
    assert answer.error_message() is not None


def test_worker_e2e_shield_funds_credits_l2(system: System) -> None:
    """shield_funds moves L1 funds into the vault and credits the L2 account."""
    amount = 5 * 10**12
    vault_before = l1_free(system.substrate, bytes(system.shard))
    receipt = submit(
        system.substrate,
        l1_keypair("//Charlie"),
        "EnclaveBridge",
        "shield_funds",
        {
            "shard": "0x" + system.shard.hex(),
            "incognito_account_encrypted": "0x"
            + system.key.encrypt(ACCOUNT_ID.encode(CHARLIE.account_id)).hex(),
            "amount": amount,
        },
    )
    wait_processed(system.substrate, system.shard, receipt.block_hash)
    assert system.client.free_balance(system.shard, CHARLIE) == amount
    assert l1_free(system.substrate, bytes(system.shard)) == vault_before + amount


def test_worker_e2e_unshield_pays_l1_once(system: System) -> None:
    """balance_unshield makes the worker send unshield_funds; the beneficiary is paid once."""
    value = 2 * 10**12
    before = l1_free(system.substrate, bytes(DAVE.account_id))
    nonce = system.client.nonce(system.shard, CHARLIE)
    unshield = system.call(
        BalanceUnshield(CHARLIE.account_id, DAVE.account_id, Balance(value), system.shard),
        nonce,
        CHARLIE,
    )
    receipt = system.invoke("//Charlie", encrypt_call(system.key, unshield))
    wait_processed(system.substrate, system.shard, receipt.block_hash)
    wait_until(
        lambda: l1_free(system.substrate, bytes(DAVE.account_id)) > before,
        PROCESSED_TIMEOUT,
        "the unshielded funds on L1",
    )
    time.sleep(3.0)  # a few more blocks: a second payment would show now
    assert l1_free(system.substrate, bytes(DAVE.account_id)) == before + value
    assert system.client.free_balance(system.shard, CHARLIE) == 3 * 10**12


def test_worker_e2e_bad_calls_are_skipped(system: System) -> None:
    """Bad ciphertext, bad signature and a stale nonce are skipped; the next good call runs."""
    alice_nonce = system.client.nonce(system.shard, ALICE)
    bob_before = system.client.free_balance(system.shard, BOB)
    garbage = secrets.token_bytes(384)
    forged = system.call(
        BalanceTransfer(ALICE.account_id, BOB.account_id, Balance(50)), alice_nonce, BOB
    )
    stale = system.call(
        BalanceTransfer(ALICE.account_id, BOB.account_id, Balance(60)), alice_nonce - 1, ALICE
    )
    good = system.call(
        BalanceTransfer(ALICE.account_id, BOB.account_id, Balance(70)), alice_nonce, ALICE
    )
    eve = l1_keypair("//Eve")
    l1_nonce = system.substrate.get_account_nonce(eve.ss58_address)
    for i, cyphertext in enumerate(
        (garbage, encrypt_call(system.key, forged), encrypt_call(system.key, stale))
    ):
        system.invoke("//Eve", cyphertext, wait=False, nonce=l1_nonce + i)
    receipt = system.invoke("//Eve", encrypt_call(system.key, good), nonce=l1_nonce + 3)
    processed = wait_processed(system.substrate, system.shard, receipt.block_hash)
    # only the good call is a leaf, whichever block the bad ones landed in
    assert processed["trusted_calls_merkle_root"] == merkle_root(good)
    assert system.client.free_balance(system.shard, BOB) == bob_before + 70
    assert system.client.nonce(system.shard, ALICE) == alice_nonce + 1
    status, body = http_get(system.worker.health + "/is_initialized")
    assert status == 200, body  # the worker is still up and in sync
    _, text = http_get(system.worker.metrics + "/metrics")
    for reason in ("bad_ciphertext", "bad_signature", "bad_nonce"):
        match = re.search(
            rf'^tocw_indirect_calls_failed_total{{reason="{reason}"}} (\S+)', text, re.M
        )
        assert match is not None and float(match.group(1)) >= 1, (reason, text)
    match = re.search(r"^tocw_indirect_calls_executed_total (\S+)", text, re.M)
    assert match is not None and float(match.group(1)) >= 5


# --- recovery ------------------------------------------------------------------------------------


def last_logged_import(worker: WorkerProcess) -> int:
    """The highest block the worker's log says the enclave imported (committed)."""
    numbers = [int(n) for n in re.findall(r"imported block (\d+) ", worker.stderr(10**7))]
    assert numbers, f"the worker imported nothing:\n{worker.stderr()}"
    return max(numbers)


def kill_when_imported(worker: WorkerProcess, past: int, timeout: float = START_TIMEOUT) -> int:
    """SIGKILL the worker as soon as its log shows a block after `past` imported; that block."""
    needle = f"imported block {past + 1} "
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in worker.err.read_text(errors="replace"):
            worker.proc.send_signal(signal.SIGKILL)
            worker.proc.wait(10)
            return past + 1
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited early:\n{worker.stderr()}")
        time.sleep(0.002)
    raise AssertionError(f"the worker imported nothing after #{past}:\n{worker.stderr()}")


def test_worker_e2e_kill_mid_sync_restores_same_state(tmp_path: Path) -> None:
    """kill -9 during catch-up, restart: the state root equals a never-killed worker's, and no
    call was applied twice.

    The chain is frozen (restarted with a one-hour block time) after the calls, so the killed
    worker and a never-killed copy of its data dir catch up to the same finalized head and can
    be compared there. A fixed --external-url keeps restarts from re-registering (a frozen
    chain includes nothing).
    """
    chain_dir = tmp_path / "chain-db"
    data = tmp_path / "data"
    twin = tmp_path / "twin"
    url_flag = ("--external-url", "wss://127.0.0.1:1")
    with start_dev_chain(tmp_path / "c1", block_time=0.5, base_path=chain_dir) as url:
        substrate = SubstrateInterface(url=url)
        try:
            with running_worker(tmp_path, "w-first", url, data, *url_flag) as worker:
                client = TrustedClient(worker.trusted_rpc)
                key = ShieldingPublicKey.from_json(
                    Str.decode(client.value("author_getShieldingKey"))
                )
                mrenclave = MrEnclave(client.value("tocw_getMrenclave"))
                shard = ShardId(client.value("author_getShard"))
            stopped_at = last_logged_import(worker)
            shutil.copytree(data, twin)  # the never-killed worker's starting point
            # the backlog: calls the workers will import while catching up
            calls = [
                signed_call(
                    mrenclave,
                    shard,
                    BalanceSetBalance(
                        ALICE.account_id, ALICE.account_id, Balance(10_000), Balance(0)
                    ),
                    0,
                    ALICE,
                )
            ]
            calls += [
                signed_call(
                    mrenclave,
                    shard,
                    BalanceTransfer(ALICE.account_id, BOB.account_id, Balance(100)),
                    n,
                    ALICE,
                )
                for n in range(1, 6)
            ]
            for signed in calls:
                submit(
                    substrate,
                    l1_keypair("//Alice"),
                    "EnclaveBridge",
                    "invoke",
                    invoke_params(shard, encrypt_call(key, signed)),
                )
            time.sleep(2.0)  # a few empty blocks after the last call, then finality
        finally:
            substrate.close()
    with start_dev_chain(tmp_path / "c2", block_time=3600, base_path=chain_dir) as url:
        worker = spawn_worker(tmp_path, "w-killed", url, data, *url_flag)
        try:
            killed_at = kill_when_imported(worker, stopped_at)
        finally:
            stop_process(worker.proc)
        with running_worker(tmp_path, "w-restarted", url, data, *url_flag) as restarted:
            client = TrustedClient(restarted.trusted_rpc)
            root_after_kill = client.state_root(shard)
            assert client.free_balance(shard, BOB) == 500  # each transfer exactly once
            assert client.free_balance(shard, ALICE) == 9_500
            assert client.nonce(shard, ALICE) == 6
        with running_worker(tmp_path, "w-twin", url, twin, *url_flag) as never_killed:
            reference = TrustedClient(never_killed.trusted_rpc).state_root(shard)
    assert killed_at > stopped_at
    assert root_after_kill == reference


def test_worker_e2e_refuses_another_chain(tmp_path: Path) -> None:
    """A data dir that followed one chain refuses a new chain with the same genesis: clear
    error, exit code 1, nothing imported."""
    data = tmp_path / "data"
    with (
        start_dev_chain(tmp_path / "a", block_time=0.3) as url,
        running_worker(tmp_path, "w-a", url, data) as worker,
    ):
        pass
    imported = last_logged_import(worker)
    with start_dev_chain(tmp_path / "b", block_time=0.2) as url:
        substrate = SubstrateInterface(url=url)
        try:
            wait_until(
                lambda: (
                    substrate.get_block_number(substrate.get_chain_finalised_head()) > imported + 5
                ),
                30.0,
                "the second chain to pass the first one's height",
            )
        finally:
            substrate.close()
        worker = spawn_worker(tmp_path, "w-b", url, data)
        try:
            code = worker.proc.wait(START_TIMEOUT)
        finally:
            stop_process(worker.proc)
    assert code == 1
    stderr = worker.stderr()
    assert "another chain or a fork" in stderr, stderr
    assert re.search(r"imported block \d+ 0x", stderr) is None


def test_worker_e2e_reconnects_after_node_restart(tmp_path: Path) -> None:
    """The node goes away: the worker stays up, retries with backoff, and when the node is back
    it resubscribes and catches up (no silent hang, no exit)."""
    port = free_port()
    base = tmp_path / "chain-db"
    worker: WorkerProcess | None = None
    try:
        with chain_on_port(tmp_path, "chain-1", port, base, 0.5) as url:
            worker = spawn_worker(tmp_path, "worker", url, tmp_path / "data")
            worker.wait_for("initialized")
            before = int(health_json(worker)["lastImportedBlock"])
        wait_until(
            lambda: "cannot connect" in worker.stderr(10**7),
            30.0,
            "the worker to retry while the node is gone",
        )
        assert worker.proc.poll() is None, worker.stderr()
        assert health_json(worker)["lastImportedBlock"] is not None  # health still answers
        with chain_on_port(tmp_path, "chain-2", port, base, 0.5):
            wait_until(
                lambda: (health_json(worker)["lastImportedBlock"] or 0) > before + 4,
                60.0,
                "the worker to import blocks of the restarted node",
            )
            assert http_get(worker.health + "/is_initialized")[0] == 200
    finally:
        if worker is not None:
            code = stop_process(worker.proc)
    assert code == 0, worker.stderr()
