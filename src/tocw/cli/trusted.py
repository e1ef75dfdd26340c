"""`tocw trusted ...`: incognito accounts and trusted calls of a shard, as Integritee's CLI.

    tocw trusted [--mrenclave HEX] [--shard HEX] [--signer ACCOUNT] COMMAND ...

      new-account [--name N]           create an incognito account (keystore, "trusted" keys)
      list-accounts                    the incognito accounts of the keystore
      transfer FROM TO AMOUNT          balance_transfer inside the shard
      set-balance ACCOUNT AMOUNT       balance_set_balance, signed by the shard's root (--root)
      balance ACCOUNT                  free balance in the shard (a getter the account signs)
      nonce ACCOUNT                    next trusted-call nonce of the account
      unshield-funds FROM TO AMOUNT    from the shard back to an L1 account
      get-shard                        the shard the worker serves
      get-shard-vault                  the shard's vault account on L1

--mrenclave is the MRENCLAVE the worker must be attested with (default: whatever the worker's
verified attestation says, printed with the result); --shard defaults to the MRENCLAVE.
--signer is the parentchain account that signs and pays for the EnclaveBridge.invoke extrinsic
(default //Alice, as Integritee's --xt-signer).

Trusted calls go by indirect invocation: the call is signed with the sender's current nonce,
encrypted to the attested shielding key and sent with EnclaveBridge.invoke; the command then
blocks until a worker's ProcessedParentchainBlock for the block that included it (bounded by
--timeout), reads the sender's nonce and balance again, and prints the outcome. A call the
worker accepted but that failed (e.g. an insufficient balance) still moves the nonce, as in
Integritee, and exits with code 1.
"""

from __future__ import annotations

import argparse
from typing import Any

from tocw.cli.accounts import add_new_account_options, list_accounts, new_account
from tocw.cli.common import (
    Context,
    add_global_options,
    command,
    parse_hex32,
)
from tocw.client.errors import CallFailedError
from tocw.client.keystore import PARENTCHAIN, TRUSTED
from tocw.client.sdk import CallOutcome, TrustedClient
from tocw.primitives.ss58 import ss58_encode
from tocw.primitives.types import MrEnclave, ShardId, to_hex

DEFAULT_SIGNER = "//Alice"
DEFAULT_ROOT = "//Alice"


def _trusted_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    def default(value: Any) -> Any:
        return value if top_level else argparse.SUPPRESS

    group = parser.add_argument_group("trusted options")
    group.add_argument(
        "--mrenclave",
        default=default(None),
        help="expected MRENCLAVE, 0x hex (default: the worker's attested one)",
    )
    group.add_argument(
        "--shard", default=default(None), help="shard, 0x hex (default: the MRENCLAVE)"
    )
    group.add_argument(
        "--signer",
        default=default(DEFAULT_SIGNER),
        metavar="ACCOUNT",
        help=f"L1 account that signs and pays for invoke (default {DEFAULT_SIGNER})",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser(
        "trusted",
        help="incognito accounts and trusted calls of a shard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_global_options(group)
    _trusted_options(group, top_level=True)
    sub = group.add_subparsers(dest="trusted_command", metavar="COMMAND", required=True)

    def add(name: str, handler: Any, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text[:1].upper() + text[1:] + ".")
        add_global_options(p)
        _trusted_options(p, top_level=False)
        p.set_defaults(func=command(handler))
        return p

    add_new_account_options(add("new-account", _new_account, "create an incognito account"))
    add("list-accounts", _list_accounts, "list the keystore's incognito accounts")
    p = add("transfer", _transfer, "transfer funds inside the shard")
    p.add_argument("sender", metavar="FROM")
    p.add_argument("to", metavar="TO")
    p.add_argument("amount", metavar="AMOUNT")
    p = add("set-balance", _set_balance, "set an account's balance (root only; dev chains)")
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("amount", metavar="AMOUNT")
    p.add_argument(
        "--root",
        default=DEFAULT_ROOT,
        metavar="ACCOUNT",
        help=f"the shard's root account (default {DEFAULT_ROOT})",
    )
    p = add("balance", _balance, "print an account's free balance in the shard")
    p.add_argument("account", metavar="ACCOUNT")
    p = add("nonce", _nonce, "print an account's next trusted-call nonce")
    p.add_argument("account", metavar="ACCOUNT")
    p = add("unshield-funds", _unshield, "move funds from the shard to an L1 account")
    p.add_argument("sender", metavar="FROM", help="the incognito account paying")
    p.add_argument("to", metavar="TO", help="the L1 account credited")
    p.add_argument("amount", metavar="AMOUNT")
    p.add_argument(
        "--no-wait-payout",
        action="store_true",
        help="return once the worker processed the call, without waiting for the L1 payout",
    )
    add("get-shard", _get_shard, "print the shard the worker serves")
    add("get-shard-vault", _get_shard_vault, "print the shard's vault account on L1")


async def _client(ctx: Context) -> TrustedClient:
    args = ctx.args
    mrenclave = (
        None if args.mrenclave is None else MrEnclave(parse_hex32(args.mrenclave, "--mrenclave"))
    )
    shard = None if args.shard is None else ShardId(parse_hex32(args.shard, "--shard"))
    return await ctx.trusted(mrenclave, shard)


def _outcome_json(client: TrustedClient, outcome: CallOutcome) -> dict[str, Any]:
    return {
        "mrenclave": to_hex(client.mrenclave),
        "shard": to_hex(client.shard),
        "block_number": outcome.inclusion.block_number,
        "block_hash": to_hex(outcome.inclusion.block_hash),
        "confirmed_in": outcome.processed.confirmed_in_number,
        "trusted_calls_merkle_root": to_hex(outcome.processed.trusted_calls_merkle_root),
        "call_hash": to_hex(outcome.leaf),
        "nonce": outcome.nonce,
        "nonce_after": outcome.nonce_after,
        "executed": outcome.executed,
        "balance_before": outcome.balance_before,
        "balance_after": outcome.balance_after,
    }


def _report(
    ctx: Context, client: TrustedClient, what: str, outcome: CallOutcome, **extra: Any
) -> None:
    """Print the outcome; CallFailedError when the call failed in the STF."""
    token = client.token
    processed = (
        f"{what}: block #{outcome.inclusion.block_number} processed (confirmed in "
        f"#{outcome.processed.confirmed_in_number}), nonce {outcome.nonce} -> {outcome.nonce_after}"
    )
    ctx.out.data({"call": what, **_outcome_json(client, outcome), **extra})
    if outcome.executed is False:
        have = (
            ""
            if outcome.balance_before is None
            else f" (the sender has {token.format(outcome.balance_before)})"
        )
        raise CallFailedError(
            f"{processed}, but it FAILED in the worker{have}: insufficient balance? The nonce "
            "moved anyway, as in Integritee"
        )
    after = (
        ""
        if outcome.balance_after is None
        else f"; the sender now has {token.format(outcome.balance_after)}"
    )
    ctx.out.line(f"{processed}, executed{after}")


# -- accounts ------------------------------------------------------------------------------------


async def _new_account(ctx: Context) -> None:
    await new_account(ctx, TRUSTED)


async def _list_accounts(ctx: Context) -> None:
    await list_accounts(ctx, TRUSTED, "incognito accounts")


# -- getters -------------------------------------------------------------------------------------


async def _balance(ctx: Context) -> None:
    account = ctx.account(ctx.args.account, TRUSTED, PARENTCHAIN)
    keypair = account.require_keypair()
    client = await _client(ctx)
    free = await client.free_balance(keypair)
    ctx.out.result(
        str(free),
        {
            "account": account.address,
            "free": free,
            "formatted": client.token.format(free),
            "shard": to_hex(client.shard),
        },
    )


async def _nonce(ctx: Context) -> None:
    account = ctx.account(ctx.args.account, TRUSTED, PARENTCHAIN)
    keypair = account.require_keypair()
    client = await _client(ctx)
    nonce = await client.nonce(keypair)
    ctx.out.result(
        str(nonce), {"account": account.address, "nonce": nonce, "shard": to_hex(client.shard)}
    )


async def _get_shard(ctx: Context) -> None:
    client = await _client(ctx)
    shard = await client.worker.shard()
    ctx.out.result(to_hex(shard), {"shard": to_hex(shard), "mrenclave": to_hex(client.mrenclave)})


async def _get_shard_vault(ctx: Context) -> None:
    client = await _client(ctx)
    vault = await client.shard_vault()
    ctx.out.result(ss58_encode(vault), {"address": ss58_encode(vault), "public": to_hex(vault)})


# -- calls ---------------------------------------------------------------------------------------


async def _transfer(ctx: Context) -> None:
    sender = ctx.account(ctx.args.sender, TRUSTED, PARENTCHAIN)
    keypair = sender.require_keypair()
    to = ctx.account(ctx.args.to, TRUSTED, PARENTCHAIN)
    xt_signer = ctx.account(ctx.args.signer, PARENTCHAIN, TRUSTED).require_keypair()
    client = await _client(ctx)
    amount = client.token.parse(ctx.args.amount)
    with ctx.out.progress("trusted transfer") as progress:
        outcome = await client.transfer(
            keypair, to.account_id, amount, xt_signer=xt_signer, progress=progress
        )
    _report(
        ctx,
        client,
        f"transfer of {client.token.format(amount)} from {sender.label} to {to.label}",
        outcome,
        amount=amount,
        to=to.address,
    )


async def _set_balance(ctx: Context) -> None:
    account = ctx.account(ctx.args.account, TRUSTED, PARENTCHAIN)
    root = ctx.account(ctx.args.root, PARENTCHAIN, TRUSTED).require_keypair()
    xt_signer = ctx.account(ctx.args.signer, PARENTCHAIN, TRUSTED).require_keypair()
    client = await _client(ctx)
    amount = client.token.parse(ctx.args.amount)
    with ctx.out.progress("set balance") as progress:
        outcome = await client.set_balance(
            root, account.account_id, amount, xt_signer=xt_signer, progress=progress
        )
    _report(
        ctx,
        client,
        f"set-balance of {account.label} to {client.token.format(amount)}",
        outcome,
        amount=amount,
    )


async def _unshield(ctx: Context) -> None:
    sender = ctx.account(ctx.args.sender, TRUSTED, PARENTCHAIN)
    keypair = sender.require_keypair()
    to = ctx.account(ctx.args.to, PARENTCHAIN, TRUSTED)
    xt_signer = ctx.account(ctx.args.signer, PARENTCHAIN, TRUSTED).require_keypair()
    client = await _client(ctx)
    amount = client.token.parse(ctx.args.amount)
    what = f"unshielding of {client.token.format(amount)} from {sender.label} to {to.label} on L1"
    with ctx.out.progress("unshielding") as progress:
        outcome = await client.unshield(
            keypair, to.account_id, amount, xt_signer=xt_signer, progress=progress
        )
        _report(ctx, client, what, outcome, amount=amount, to=to.address)
        if ctx.args.no_wait_payout:
            return
        paid = await client.wait_for_payout(
            to.account_id, amount, since=outcome.inclusion.block_number, progress=progress
        )
    l1 = await client.chain.free_balance(to.account_id)
    ctx.out.result(
        f"paid out on L1 in block #{paid.block_number}; "
        f"{to.label} now has {client.token.format(l1)}",
        {
            "payout_block_number": paid.block_number,
            "payout_block_hash": to_hex(paid.block_hash),
            "to_free": l1,
        },
    )
