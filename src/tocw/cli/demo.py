"""`tocw demo` (= `make demo`): the off-chain worker's whole client workflow, on one machine.

In a temporary directory it starts a dev chain (1 s blocks) and a worker, each on free ports,
prints the MRENCLAVE and the URLs, and then runs, through the SDK (tocw.client.sdk), the
scenario of Integritee's `cli/demo_shielding_unshielding.sh` against the worker:

 1. shield 6 TEER from //Alice's L1 account into a new incognito account (EnclaveBridge
    .shield_funds);
 2. trusted transfer of 2 TEER from it to Bob's new incognito account;
 3. unshield 1 TEER to //Ferdie, whose L1 balance rises by exactly that;
 4. three transfers of 0.2 TEER from Bob to Charlie's new incognito account (Bob's nonce 3);
 5. a transfer of 2 TEER that Bob cannot afford: it fails, yet his nonce becomes 4;
 6. one more 0.2 TEER transfer (nonce 5), and every balance checked exactly.

Every trusted call goes by indirect invocation and waits for the worker's
ProcessedParentchainBlock of the block that included it. The demo prints a table of the steps
with the time each took and of the final balances, and exits 0 only if every check held; on a
failure it names the step and why, with the end of the processes' logs. The chain and the
worker are stopped and the directory removed on success, failure and Ctrl-C (or SIGTERM).

The worker runs the simulated TEE: its attestation proves nothing, and the demo says so. It
accepts it only because it started that worker itself, which is exactly the acknowledgment
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
from typing import Any, Final

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tocw.cli.devnet import DevNet, DevNetError
from tocw.client.errors import ClientError
from tocw.client.sdk import SIM_WARNING, CallOutcome, TrustedClient
from tocw.primitives.keys import Keypair
from tocw.primitives.types import to_hex

SHIELD: Final = 6
TRANSFER: Final = 2
UNSHIELD: Final = 1
SMALL_NUM: Final = 2  # 0.2 TEER = SMALL_NUM * unit // SMALL_DEN
SMALL_DEN: Final = 10
SUCCESS_LINE: Final = "demo passed: every check held."
EXIT_INTERRUPTED: Final = 130
PIPE_WIDTH: Final = 120


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole off-chain-worker workflow on a local dev chain and worker",
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
        self.console.print(f"[bold]>[/bold] {name}")
        start = time.monotonic()
        try:
            yield
        except StepFailedError:
            raise
        except (ClientError, DevNetError) as e:
            raise StepFailedError(name, str(e)) from None
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
    # SIGTERM (a CI timeout, `kill`) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with _work_directory(workdir, keep, console) as directory:
            net = DevNet(directory, block_time=block_time)
            try:
                with net:
                    return _run_with(net, steps, console)
            finally:
                pids = ", ".join(str(p.pid) for p in net.processes)
                if pids:
                    console.print(f"stopped the dev chain and the worker (pids {pids})")
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]: the chain and the worker were stopped")
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    console.print("[bold]tocw demo[/bold]: shielding, trusted transfers and unshielding")
    console.print(f"work directory {net.workdir}")
    try:
        with steps.step(f"start a dev chain ({net.block_time:g} s blocks)"):
            net.start_chain()
        with steps.step("start a worker (sim TEE) and wait until it is registered and in sync"):
            net.start_worker()
        assert net.chain is not None and net.worker is not None
        console.print(f"  node      {net.node_url}  (pid {net.chain.pid})")
        console.print(f"  worker    {net.worker_url}  (pid {net.worker.pid})")
        console.print(f"  mrenclave {net.mrenclave} (= the shard)")
        asyncio.run(_scenario(net, steps, console))
    except StepFailedError as e:
        console.print(f"\n[bold red]demo FAILED[/bold red] at step '{e.step}': {e.reason}")
        for process in net.processes:
            alive = process.proc.poll() is None
            state = "running" if alive else f"exited with {process.proc.returncode}"
            console.print(f"last lines of the {process.name} log ({state}):")
            console.print(process.tail(15), markup=False)
        return 1
    _print_steps(steps, console)
    console.print(f"[bold green]{SUCCESS_LINE}[/bold green]")
    return 0


async def _scenario(net: DevNet, steps: _Steps, console: Console) -> None:
    with steps.step("verify the worker's attestation"):
        client = await TrustedClient.connect(
            net.node_url, net.worker_url, allow_sim=True, timeout=60.0
        )
    async with client:
        identity = client.identity
        console.print(f"  [bold red]{SIM_WARNING}[/bold red]")
        steps.check("attested mrenclave", to_hex(identity.mrenclave), net.mrenclave)
        steps.check_true("the attestation binds the shielding key and the TLS certificate", True)
        await _flow(client, steps, console)


async def _flow(client: TrustedClient, steps: _Steps, console: Console) -> None:
    token, unit = client.token, client.token.unit
    small = SMALL_NUM * unit // SMALL_DEN
    alice, ferdie = Keypair.from_uri("//Alice"), Keypair.from_uri("//Ferdie")
    alice_inc, bob_inc, charlie_inc = Keypair.generate(), Keypair.generate(), Keypair.generate()
    console.print(f"  incognito accounts: Alice {alice_inc.ss58_address}")
    console.print(f"                      Bob {bob_inc.ss58_address}")
    console.print(f"                      Charlie {charlie_inc.ss58_address}")

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

    with steps.step(f"shield {SHIELD} {token.symbol} from //Alice to her new incognito account"):
        l1_before = await client.chain.free_balance(alice.account_id)
        _, processed = await client.shield(alice, alice_inc.account_id, SHIELD * unit)
        console.print(f"  processed block #{processed.block_number}")
        steps.check("Alice's incognito balance", await balance(alice_inc), fmt(SHIELD * unit))
        spent = l1_before - await client.chain.free_balance(alice.account_id)
        steps.check_true(
            f"//Alice's L1 balance dropped by {SHIELD} {token.symbol} plus fees",
            SHIELD * unit <= spent < (SHIELD + 1) * unit,
            f" (dropped by {fmt(spent)})",
        )

    with steps.step(f"trusted transfer of {TRANSFER} {token.symbol} to Bob's incognito account"):
        outcome = await client.transfer(
            alice_inc, bob_inc.account_id, TRANSFER * unit, xt_signer=alice
        )
        transferred(outcome)
        steps.check("Alice's incognito balance", await balance(alice_inc), fmt(4 * unit))
        steps.check("Bob's incognito balance", await balance(bob_inc), fmt(TRANSFER * unit))

    with steps.step(f"unshield {UNSHIELD} {token.symbol} to //Ferdie on L1"):
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
        steps.check("Alice's incognito balance", await balance(alice_inc), fmt(3 * unit))

    with steps.step(f"three transfers of {fmt(small)} from Bob to Charlie's incognito account"):
        steps.check("Bob's nonce before", await client.nonce(bob_inc), 0)
        for _ in range(3):
            transferred(
                await client.transfer(bob_inc, charlie_inc.account_id, small, xt_signer=alice)
            )
        steps.check("Bob's nonce", await client.nonce(bob_inc), 3)
        steps.check("Bob's incognito balance", await balance(bob_inc), fmt(2 * unit - 3 * small))

    with steps.step(f"a transfer of {TRANSFER} {token.symbol} that Bob cannot afford fails"):
        outcome = await client.transfer(
            bob_inc, charlie_inc.account_id, TRANSFER * unit, xt_signer=alice
        )
        steps.check_true("the transfer failed in the worker", outcome.executed is False)
        steps.check("Bob's nonce (moved anyway)", await client.nonce(bob_inc), 4)
        steps.check("Bob's incognito balance", await balance(bob_inc), fmt(2 * unit - 3 * small))

    with steps.step(f"one more transfer of {fmt(small)} from Bob to Charlie"):
        transferred(await client.transfer(bob_inc, charlie_inc.account_id, small, xt_signer=alice))
        steps.check("Bob's nonce", await client.nonce(bob_inc), 5)

    with steps.step("final balances"):
        expected = {
            "Alice (incognito)": (alice_inc, 3 * unit, 2),
            "Bob (incognito)": (bob_inc, 2 * unit - 4 * small, 5),
            "Charlie (incognito)": (charlie_inc, 4 * small, 0),
        }
        table = Table(title="final balances in the shard", title_justify="left")
        for column in ("account", "address", "balance", "nonce"):
            table.add_column(column)
        for name, (pair, value, nonce) in expected.items():
            have, have_nonce = await balance(pair), await client.nonce(pair)
            steps.check(f"{name} balance", have, fmt(value))
            steps.check(f"{name} nonce", have_nonce, nonce)
            table.add_row(name, pair.ss58_address, have, str(have_nonce))
        vault = await client.shard_vault()
        table.add_row("shard vault (L1)", "", fmt(await client.chain.free_balance(vault)), "")
        console.print(table)


def _print_steps(steps: _Steps, console: Console) -> None:
    table = Table(title="steps", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("time", justify="right")
    for i, (name, seconds) in enumerate(steps.done, 1):
        table.add_row(str(i), name, f"{seconds:.1f} s")
    table.add_row("", "total", f"{sum(s for _, s in steps.done):.1f} s")
    console.print(table)
