"""`tocw demo` (= `make demo`): the off-chain worker's whole client workflow, with two workers.

In a temporary directory it starts a dev chain (1 s blocks) and worker A, which creates the
shard, then worker B, which joins it: B gets the shard's shielding key from A over mutually
attested TLS (`--mu-ra-port`) and replays the chain from the shard's creation block (see
docs/multi-worker.md). It prints the MRENCLAVE, the shard and both workers' URLs, and where B
got the key from. Then it runs, through the SDK (tocw.client.sdk), the scenario of Integritee's
`cli/demo_shielding_unshielding.sh`, first against worker A:

 1. shield 6 TEER from //Alice's L1 account into a new incognito account (EnclaveBridge
    .shield_funds);
 2. trusted transfer of 2 TEER from it to Bob's new incognito account;
 3. unshield 1 TEER to //Ferdie, whose L1 balance rises by exactly that (both workers send
    the payout; the chain pays it once);
 4. three transfers of 0.2 TEER from Bob to Charlie's new incognito account (Bob's nonce 3);
 5. a transfer of 2 TEER that Bob cannot afford: it fails, yet his nonce becomes 4;
 6. one more 0.2 TEER transfer (nonce 5), and every balance checked exactly;

and then repeats it against worker B, with new incognito accounts: B's attestation verified,
every call encrypted to the key B serves, every balance and nonce read through B's getters.
Last, it reads every account of both rounds through both workers and checks that A and B report
the same state root (`tocw_getStateRoot`) at the same block.

Every trusted call goes by indirect invocation and waits for a ProcessedParentchainBlock of the
block that included it, and then until the worker the client talks to has itself processed
that block (the SDK waits for the first confirmation, which may come from the other worker). The
demo prints a table of the steps with the time each took and of the final balances, and exits
0 only if every check held; on a failure it names the step and why, with the end of the
processes' logs. The chain and both workers are stopped and the directory removed on success,
failure and Ctrl-C (or SIGTERM).

The workers run the simulated TEE: their attestations prove nothing, and the demo says so. It
accepts them only because it started those workers itself, which is exactly the acknowledgment
`--insecure-skip-attestation` gives in the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tocw.cli.devnet import DevNet, WorkerInfo
from tocw.client.errors import ClientTimeoutError
from tocw.client.sdk import SIM_WARNING, CallOutcome, TrustedClient
from tocw.client.worker import StateRoot
from tocw.primitives.keys import Keypair
from tocw.primitives.types import MrEnclave, to_hex

SHIELD: Final = 6
TRANSFER: Final = 2
UNSHIELD: Final = 1
SMALL_NUM: Final = 2  # 0.2 TEER = SMALL_NUM * unit // SMALL_DEN
SMALL_DEN: Final = 10
SUCCESS_LINE: Final = "demo passed: every check held."
EXIT_INTERRUPTED: Final = 130
PIPE_WIDTH: Final = 120
CLIENT_TIMEOUT: Final = 30.0  # one step normally takes two block times
POLL: Final = 0.1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole off-chain-worker workflow on a dev chain with two workers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--block-time",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="the dev chain's block time (default 1)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory (chain and worker logs) instead of deleting it",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if not 0.1 <= args.block_time <= 30:
        print("error: --block-time must be between 0.1 and 30 seconds")
        return 2
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:  # CI logs: wide enough for addresses in tables
        console = Console(highlight=False, soft_wrap=True, width=PIPE_WIDTH)
    return run_demo(console, block_time=args.block_time, keep=args.keep)


class StepFailedError(Exception):
    """A step of the demo did not hold; carries the step's name and the reason."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


@dataclass
class _Steps:
    """Runs the steps in order, timing each and stopping at the first that fails."""

    console: Console
    done: list[tuple[str, float]] = field(default_factory=list)
    current: str = ""

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.current = name
        self.console.print(f"[bold]>[/bold] {escape(name)}")
        start = time.monotonic()
        try:
            yield
        except StepFailedError:
            raise
        except Exception as e:  # the demo's contract: any failure names its step and why
            raise StepFailedError(name, str(e) or type(e).__name__) from None
        elapsed = time.monotonic() - start
        self.done.append((name, elapsed))
        self.console.print(f"  [green]ok[/green] ({elapsed:.1f} s)")

    def check(self, what: str, actual: Any, expected: Any) -> None:
        if actual != expected:
            raise StepFailedError(self.current, f"{what}: expected {expected}, got {actual}")
        self.console.print(f"  [green]\u2713[/green] {escape(what)} = {escape(str(actual))}")

    def check_true(self, what: str, held: bool, detail: str = "") -> None:
        if not held:
            raise StepFailedError(self.current, f"{what} does not hold{detail}")
        self.console.print(f"  [green]\u2713[/green] {escape(what)}")


@dataclass(frozen=True, slots=True)
class _Expected:
    """An incognito account of the scenario with the balance and nonce it must end with."""

    name: str
    pair: Keypair
    balance: int
    nonce: int


def run_demo(
    console: Console,
    *,
    block_time: float = 1.0,
    keep: bool = False,
    workdir: Path | None = None,
) -> int:
    """Run the demo; 0 if every check held, 1 if one did not, 130 when interrupted."""
    steps = _Steps(console)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _sigterm_as_sigint)
    try:
        with _work_directory(workdir, keep, console) as directory:
            net = DevNet(directory, block_time=block_time)
            try:
                with net:
                    return _run_with(net, steps, console)
            finally:
                pids = ", ".join(str(p.pid) for p in net.processes)
                if pids:
                    console.print(f"stopped the dev chain and the workers (pids {pids})")
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]: the chain and the workers were stopped")
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sigterm_as_sigint(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a CI timeout, `kill`) cleans up exactly like Ctrl-C does.

    Re-raised as SIGINT rather than raising KeyboardInterrupt here: inside asyncio.run, SIGINT
    cancels the scenario's task, so its connections close in order (a KeyboardInterrupt raised
    at an arbitrary point of the event loop left sockets to time out, seconds later). When
    SIGINT is ignored (a background job of a script), SIGTERM must still stop the demo.
    """
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL, None):
        raise KeyboardInterrupt
    signal.raise_signal(signal.SIGINT)


@contextlib.contextmanager
def _work_directory(given: Path | None, keep: bool, console: Console) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    directory = tempfile.mkdtemp(prefix="tocw-demo-")
    try:
        yield Path(directory)
    finally:
        if keep:
            console.print(f"kept the work directory {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def _run_with(net: DevNet, steps: _Steps, console: Console) -> int:
    console.print(
        "[bold]tocw demo[/bold]: shielding, trusted transfers and unshielding, on two workers"
    )
    console.print(f"work directory {net.workdir}")
    try:
        with steps.step(f"start a dev chain ({net.block_time:g} s blocks)"):
            net.start_chain()
        assert net.chain is not None
        console.print(f"  node      {net.node_url}  (pid {net.chain.pid})")
        with steps.step("start worker A (sim TEE): it creates the shard, registers, syncs"):
            net.start_worker()
        a = net.worker_infos[0]
        console.print(f"  mrenclave {a.mrenclave}")
        console.print(f"  shard     {a.shard}")
        console.print(f"  worker A  {a.url}  (pid {a.pid}, mu-ra {a.mu_ra})")
        with steps.step("start worker B: it joins the shard (key from A, replay) and syncs"):
            b = net.join_worker()
            steps.check("worker B's shard", b.shard, a.shard)
            steps.check("worker B provisioned-from (A's mu-ra)", b.provisioned_from, a.mu_ra)
        console.print(
            f"  worker B  {b.url}  (pid {b.pid}, mu-ra {b.mu_ra}, "
            f"provisioned-from {b.provisioned_from})"
        )
        asyncio.run(_scenario(net, a, b, steps, console))
    except StepFailedError as e:
        console.print(
            f"\n[bold red]demo FAILED[/bold red] at step '{escape(e.step)}': {escape(e.reason)}"
        )
        for process in net.processes:
            alive = process.proc.poll() is None
            state = "running" if alive else f"exited with {process.proc.returncode}"
            console.print(f"last lines of the {process.name} log ({state}):")
            console.print(process.tail(15), markup=False)
        return 1
    _print_steps(steps, console)
    console.print(f"[bold green]{SUCCESS_LINE}[/bold green]")
    return 0


async def _connect(net: DevNet, worker: WorkerInfo, expected: MrEnclave | None) -> TrustedClient:
    return await TrustedClient.connect(
        net.node_url,
        worker.url,
        expected_mrenclave=expected,
        allow_sim=True,
        timeout=CLIENT_TIMEOUT,
    )


async def _scenario(
    net: DevNet, a: WorkerInfo, b: WorkerInfo, steps: _Steps, console: Console
) -> None:
    with steps.step("verify worker A's attestation"):
        client_a = await _connect(net, a, None)
    async with client_a:
        identity = client_a.identity
        console.print(f"  [bold red]{escape(SIM_WARNING)}[/bold red]")
        steps.check("attested mrenclave", to_hex(identity.mrenclave), a.mrenclave)
        steps.check("attested signer", to_hex(identity.signer), a.signer.split()[-1])
        steps.check_true("the attestation binds the shielding key and the TLS certificate", True)
        round_a = await _flow(client_a, "A", steps, console)

        with steps.step("verify worker B's attestation: same code, same shard key"):
            client_b = await _connect(net, b, identity.mrenclave)
        async with client_b:
            other = client_b.identity
            console.print(f"  [bold red]{escape(SIM_WARNING)}[/bold red]")
            steps.check(
                "attested mrenclave (required to be A's)", to_hex(other.mrenclave), a.mrenclave
            )
            steps.check("attested signer", to_hex(other.signer), b.signer.split()[-1])
            steps.check_true("B is another enclave than A", other.signer != identity.signer)
            steps.check_true(
                "B serves the shielding key A generated",
                other.shielding_key_json == identity.shielding_key_json,
            )
            round_b = await _flow(client_b, "B", steps, console)
            await _agree(client_a, client_b, [*round_a, *round_b], steps, console)


async def _flow(
    client: TrustedClient, label: str, steps: _Steps, console: Console
) -> list[_Expected]:
    """The scenario of Integritee's demo against the client's worker; the accounts it leaves,
    with the balance and nonce each must have."""
    token, unit = client.token, client.token.unit
    small = SMALL_NUM * unit // SMALL_DEN
    alice, ferdie = Keypair.from_uri("//Alice"), Keypair.from_uri("//Ferdie")
    alice_inc, bob_inc, charlie_inc = Keypair.generate(), Keypair.generate(), Keypair.generate()
    alice_n, bob_n, charlie_n = (f"{n}-{label}" for n in ("Alice", "Bob", "Charlie"))
    console.print(f"  [bold]through worker {label}[/bold] ({client.worker.url})")
    console.print(f"  incognito accounts: {alice_n} {alice_inc.ss58_address}")
    console.print(f"                      {bob_n} {bob_inc.ss58_address}")
    console.print(f"                      {charlie_n} {charlie_inc.ss58_address}")

    def fmt(value: int) -> str:
        return token.format(value)

    async def balance(who: Keypair) -> str:
        return fmt(await client.free_balance(who))

    def transferred(outcome: CallOutcome) -> None:
        steps.check_true(
            "the worker executed it",
            outcome.executed is True,
            f" (balance {outcome.balance_before} -> {outcome.balance_after})",
        )

    with steps.step(
        f"{label}: shield {SHIELD} {token.symbol} from //Alice to {alice_n}'s incognito account"
    ):
        l1_before = await client.chain.free_balance(alice.account_id)
        _, processed = await client.shield(alice, alice_inc.account_id, SHIELD * unit)
        console.print(f"  processed block #{processed.block_number}")
        steps.check(f"{alice_n}'s incognito balance", await balance(alice_inc), fmt(SHIELD * unit))
        spent = l1_before - await client.chain.free_balance(alice.account_id)
        steps.check_true(
            f"//Alice's L1 balance dropped by {SHIELD} {token.symbol} plus fees",
            SHIELD * unit <= spent < (SHIELD + 1) * unit,
            f" (dropped by {fmt(spent)})",
        )

    with steps.step(f"{label}: trusted transfer of {TRANSFER} {token.symbol} to {bob_n}"):
        outcome = await client.transfer(
            alice_inc, bob_inc.account_id, TRANSFER * unit, xt_signer=alice
        )
        transferred(outcome)
        steps.check(f"{alice_n}'s incognito balance", await balance(alice_inc), fmt(4 * unit))
        steps.check(f"{bob_n}'s incognito balance", await balance(bob_inc), fmt(TRANSFER * unit))

    with steps.step(f"{label}: unshield {UNSHIELD} {token.symbol} to //Ferdie on L1"):
        ferdie_before = await client.chain.free_balance(ferdie.account_id)
        outcome = await client.unshield(
            alice_inc, ferdie.account_id, UNSHIELD * unit, xt_signer=alice
        )
        transferred(outcome)
        paid = await client.wait_for_payout(
            ferdie.account_id, UNSHIELD * unit, since=outcome.inclusion.block_number
        )
        ferdie_after = await client.chain.free_balance(ferdie.account_id)
        console.print(
            f"  paid out in block #{paid.block_number}: //Ferdie {fmt(ferdie_before)} -> "
            f"{fmt(ferdie_after)}"
        )
        steps.check("//Ferdie's L1 gain", fmt(ferdie_after - ferdie_before), fmt(unit))
        steps.check(f"{alice_n}'s incognito balance", await balance(alice_inc), fmt(3 * unit))

    with steps.step(f"{label}: three transfers of {fmt(small)} from {bob_n} to {charlie_n}"):
        steps.check(f"{bob_n}'s nonce before", await client.nonce(bob_inc), 0)
        for _ in range(3):
            transferred(
                await client.transfer(bob_inc, charlie_inc.account_id, small, xt_signer=alice)
            )
        steps.check(f"{bob_n}'s nonce", await client.nonce(bob_inc), 3)
        steps.check(
            f"{bob_n}'s incognito balance", await balance(bob_inc), fmt(2 * unit - 3 * small)
        )

    with steps.step(f"{label}: a transfer of {TRANSFER} {token.symbol} that {bob_n} cannot afford"):
        outcome = await client.transfer(
            bob_inc, charlie_inc.account_id, TRANSFER * unit, xt_signer=alice
        )
        steps.check_true("the transfer failed in the worker", outcome.executed is False)
        steps.check(f"{bob_n}'s nonce (moved anyway)", await client.nonce(bob_inc), 4)
        steps.check(
            f"{bob_n}'s incognito balance", await balance(bob_inc), fmt(2 * unit - 3 * small)
        )

    with steps.step(f"{label}: one more transfer of {fmt(small)} from {bob_n} to {charlie_n}"):
        transferred(await client.transfer(bob_inc, charlie_inc.account_id, small, xt_signer=alice))
        steps.check(f"{bob_n}'s nonce", await client.nonce(bob_inc), 5)

    expected = [
        _Expected(alice_n, alice_inc, 3 * unit, 2),
        _Expected(bob_n, bob_inc, 2 * unit - 4 * small, 5),
        _Expected(charlie_n, charlie_inc, 4 * small, 0),
    ]
    with steps.step(f"{label}: final balances, read through worker {label}"):
        table = Table(title=f"balances in the shard, through worker {label}", title_justify="left")
        for column in ("account", "address", "balance", "nonce"):
            table.add_column(column)
        for account in expected:
            have, have_nonce = await balance(account.pair), await client.nonce(account.pair)
            steps.check(f"{account.name} (incognito) balance", have, fmt(account.balance))
            steps.check(f"{account.name} (incognito) nonce", have_nonce, account.nonce)
            table.add_row(account.name, account.pair.ss58_address, have, str(have_nonce))
        console.print(table)
    return expected


async def _agree(
    client_a: TrustedClient,
    client_b: TrustedClient,
    accounts: list[_Expected],
    steps: _Steps,
    console: Console,
) -> None:
    """The two workers' state roots at one block, every account of both rounds read through
    both workers, and the shard vault on L1."""
    token = client_a.token

    def fmt(value: int) -> str:
        return token.format(value)

    with steps.step("both workers: the same state root, balances and nonces"):
        # First both at one block: that block is at or after the last call's (B had processed
        # it), so what follows reads the same, final state through either worker.
        root_a, root_b = await _same_block(client_a, client_b)
        for label, root in (("A", root_a), ("B", root_b)):
            console.print(
                f"  worker {label}: state root {to_hex(root.state_root)} after block "
                f"#{root.block_number}"
            )
        steps.check_true(
            "A and B report the same state root", root_a.state_root == root_b.state_root
        )
        table = Table(
            title="final balances in the shard, read through both workers", title_justify="left"
        )
        for column in ("account", "address", "via A", "via B", "nonce"):
            table.add_column(column)
        for account in accounts:
            seen = []
            for label, client in (("A", client_a), ("B", client_b)):
                have = fmt(await client.free_balance(account.pair))
                steps.check(f"{account.name} balance via {label}", have, fmt(account.balance))
                nonce = await client.nonce(account.pair)
                steps.check(f"{account.name} nonce via {label}", nonce, account.nonce)
                seen.append(have)
            table.add_row(account.name, account.pair.ss58_address, *seen, str(account.nonce))
        vault = await client_a.shard_vault()
        steps.check("worker B's shard vault", to_hex(await client_b.shard_vault()), to_hex(vault))
        held = await client_a.chain.free_balance(vault)
        steps.check("shard vault on L1", fmt(held), fmt(2 * (SHIELD - UNSHIELD) * token.unit))
        table.add_row("shard vault (L1)", to_hex(vault), fmt(held), "", "")
        console.print(table)


async def _same_block(
    client_a: TrustedClient, client_b: TrustedClient
) -> tuple[StateRoot, StateRoot]:
    """Both workers' tocw_getStateRoot at one block: blocks keep coming, so poll (bounded)
    until the two answers name the same block."""
    deadline = time.monotonic() + client_a.timeout
    while True:
        root_a, root_b = await asyncio.gather(
            client_a.worker.state_root(client_a.shard), client_b.worker.state_root(client_b.shard)
        )
        if root_a.block_hash == root_b.block_hash:
            return root_a, root_b
        if time.monotonic() >= deadline:
            raise ClientTimeoutError(
                f"A (at #{root_a.block_number}) and B (at #{root_b.block_number}) never reported "
                f"the same block within {client_a.timeout:.0f} s"
            )
        await asyncio.sleep(POLL)


def _print_steps(steps: _Steps, console: Console) -> None:
    table = Table(title="steps", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("time", justify="right")
    for i, (name, seconds) in enumerate(steps.done, 1):
        table.add_row(str(i), escape(name), f"{seconds:.1f} s")
    table.add_row("", "total", f"{sum(s for _, s in steps.done):.1f} s")
    console.print(table)
