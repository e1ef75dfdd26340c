"""The parentchain commands of `tocw`, mirroring Integritee's CLI where it makes sense.

    tocw balance ACCOUNT                          free balance on L1, in base units
    tocw transfer FROM TO AMOUNT                  Balances transfer on L1
    tocw faucet ACCOUNT [--amount A]              dev chains: send funds from //Alice
    tocw list-workers                             the Teerex registry (account, mrenclave, url)
    tocw shield-funds FROM INCOGNITO_TO AMOUNT    L1 -> the shard (EnclaveBridge.shield_funds)
    tocw listen [--events N | --blocks N]         print the events of finalized blocks
    tocw print-metadata                           pallets, calls, events, storage of the chain
    tocw get-shielding-key                        the worker's shielding key (attested)
    tocw verify-worker [--mrenclave HEX]          check the worker's attestation and registry

Accounts are dev URIs (//Alice), SS58 addresses, 0x-hex public keys or keystore names; amounts
are base units (1500000000000) or decimals with the unit ("1.5 TEER"). Commands that talk to
the worker first verify its attestation; a worker on the sim TEE is refused unless
--insecure-skip-attestation is given, and then a warning says that nothing was proven.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import Any

from tocw.cli.common import Context, add_command, jsonable, parse_hex32
from tocw.client.errors import ClientError, InvalidInputError
from tocw.client.keystore import PARENTCHAIN, TRUSTED
from tocw.primitives.metadata import RuntimeMetadata, VariantTypeDef
from tocw.primitives.ss58 import ss58_encode
from tocw.primitives.types import MrEnclave, ShardId, to_hex

FAUCET_AMOUNT = "100 TEER"
FAUCET_SOURCE = "//Alice"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(subparsers, "balance", _balance, "print an account's free balance on L1")
    p.add_argument("account", metavar="ACCOUNT")

    p = add_command(subparsers, "transfer", _transfer, "transfer funds on L1")
    p.add_argument("sender", metavar="FROM")
    p.add_argument("to", metavar="TO")
    p.add_argument("amount", metavar="AMOUNT")

    p = add_command(
        subparsers, "faucet", _faucet, f"dev chains: send funds from {FAUCET_SOURCE} to ACCOUNT"
    )
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("--amount", default=None, help=f"amount to send (default {FAUCET_AMOUNT})")
    p.add_argument("--from", dest="source", default=FAUCET_SOURCE, help="funding account")

    add_command(subparsers, "list-workers", _list_workers, "list the workers registered in Teerex")

    p = add_command(
        subparsers,
        "shield-funds",
        _shield_funds,
        "move funds from an L1 account into an incognito account of the shard",
    )
    p.add_argument("sender", metavar="FROM", help="the L1 account paying")
    p.add_argument("incognito", metavar="INCOGNITO_TO", help="the incognito account credited")
    p.add_argument("amount", metavar="AMOUNT")
    p.add_argument("--shard", help="shard, 0x hex (default: the worker's attested MRENCLAVE)")
    p.add_argument("--mrenclave", help="expected MRENCLAVE of the worker, 0x hex")

    p = add_command(subparsers, "listen", _listen, "print the events of finalized blocks")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--events", type=int, metavar="N", help="stop after N events")
    stop.add_argument("--blocks", type=int, metavar="N", help="stop after N blocks")

    add_command(
        subparsers, "print-metadata", _print_metadata, "print the chain's pallets and calls"
    )
    p = add_command(
        subparsers,
        "get-shielding-key",
        _get_shielding_key,
        "print the worker's attested shielding key (JSON)",
    )
    p.add_argument("--mrenclave", help="expected MRENCLAVE, 0x hex")
    p = add_command(
        subparsers,
        "verify-worker",
        _verify_worker,
        "verify the worker's attestation and its Teerex registration",
    )
    p.add_argument("--mrenclave", help="expected MRENCLAVE, 0x hex")


def expected_mrenclave(args: argparse.Namespace) -> MrEnclave | None:
    text = getattr(args, "mrenclave", None)
    return None if text is None else MrEnclave(parse_hex32(text, "--mrenclave"))


# -- balances and transfers ----------------------------------------------------------------------


async def _balance(ctx: Context) -> None:
    account = ctx.account(ctx.args.account)
    chain = await ctx.chain()
    info = await chain.account_info(account.account_id)
    token = await chain.token()
    ctx.out.result(
        str(info.free),
        {
            "account": account.address,
            "free": info.free,
            "reserved": info.reserved,
            "frozen": info.frozen,
            "nonce": info.nonce,
            "formatted": token.format(info.free),
        },
    )


async def _send(ctx: Context, source_text: str, dest_text: str, amount_text: str) -> None:
    source = ctx.account(source_text)
    signer = source.require_keypair()
    dest = ctx.account(dest_text)
    chain = await ctx.chain()
    token = await chain.token()
    amount = token.parse(amount_text)
    with ctx.out.progress(f"transferring {token.format(amount)}") as progress:
        progress("waiting for the transfer to be finalized")
        inclusion = await chain.transfer(signer, dest.account_id, amount, timeout=ctx.timeout)
    after = await chain.free_balance(dest.account_id)
    ctx.out.result(
        f"transferred {token.format(amount)} from {source.address} to {dest.address} in block "
        f"#{inclusion.block_number} ({to_hex(inclusion.block_hash)}); "
        f"{dest.label} now has {token.format(after)}",
        {
            "from": source.address,
            "to": dest.address,
            "amount": amount,
            "block_number": inclusion.block_number,
            "block_hash": to_hex(inclusion.block_hash),
            "to_free": after,
        },
    )


async def _transfer(ctx: Context) -> None:
    await _send(ctx, ctx.args.sender, ctx.args.to, ctx.args.amount)


async def _faucet(ctx: Context) -> None:
    amount = ctx.args.amount
    if amount is None:
        token = await ctx.token()
        amount = f"100 {token.symbol}"
    await _send(ctx, ctx.args.source, ctx.args.account, amount)


# -- the registry and the worker -----------------------------------------------------------------


async def _list_workers(ctx: Context) -> None:
    workers = await (await ctx.chain()).workers()
    ctx.out.data(
        [
            {
                "account": ss58_encode(w.account),
                "mrenclave": to_hex(w.mrenclave),
                "url": w.url,
                "timestamp_ms": w.timestamp_ms,
                "registered_at": w.registered_at,
                "attestation": w.attestation_method,
            }
            for w in workers
        ]
    )
    if not workers:
        ctx.out.note("no workers are registered")
        return
    rows = [
        (
            ss58_encode(w.account),
            to_hex(w.mrenclave),
            w.url or "-",
            w.registered_at,
            w.attestation_method,
        )
        for w in workers
    ]
    ctx.out.table(
        f"{len(workers)} registered worker(s)",
        ("account", "mrenclave", "url", "attested", "method"),
        rows,
    )


async def _get_shielding_key(ctx: Context) -> None:
    identity = await ctx.identity(expected_mrenclave(ctx.args))
    ctx.out.result(
        identity.shielding_key_json,
        {
            "shielding_key": json.loads(identity.shielding_key_json),
            "mrenclave": to_hex(identity.mrenclave),
            "fingerprint": to_hex(identity.shielding_key.fingerprint()),
        },
    )


async def _verify_worker(ctx: Context) -> None:
    identity = await ctx.identity(expected_mrenclave(ctx.args))
    registered: Any = None
    note = ""
    try:
        chain = await ctx.chain()
        entry = next((w for w in await chain.workers() if w.account == identity.signer), None)
    except ClientError as e:  # the registry is extra information: say why it is missing
        note = f"unknown (cannot read the registry: {e})"
        entry = None
    else:
        if entry is None:
            note = "NO: the enclave's account is not in the Teerex registry"
            registered = False
        elif entry.mrenclave != bytes(identity.mrenclave):
            note = f"with ANOTHER mrenclave {to_hex(entry.mrenclave)}"
            registered = False
        else:
            note = f"yes, url {entry.url or '-'}, attested {entry.registered_at}"
            registered = True
    lines = [
        f"worker:       {identity.url}",
        f"tee:          {identity.tee_kind.name}"
        + ("" if identity.is_secure else " (NOT SECURE: proves nothing)"),
        f"mrenclave:    {to_hex(identity.mrenclave)}",
        f"signer:       {ss58_encode(identity.signer)}",
        f"tcb status:   {identity.tcb_status}"
        + (f" (advisories {', '.join(identity.advisory_ids)})" if identity.advisory_ids else ""),
        f"shielding key fingerprint: {to_hex(identity.shielding_key.fingerprint())}",
        "binding:      the evidence binds the shielding key and the TLS certificate presented",
        f"registered:   {note}",
    ]
    ctx.out.result(
        "\n".join(lines),
        {
            "url": identity.url,
            "tee": identity.tee_kind.name,
            "secure": identity.is_secure,
            "mrenclave": to_hex(identity.mrenclave),
            "signer": ss58_encode(identity.signer),
            "tcb_status": identity.tcb_status,
            "advisory_ids": list(identity.advisory_ids),
            "shielding_key_fingerprint": to_hex(identity.shielding_key.fingerprint()),
            "registered": registered,
        },
    )


# -- shielding -----------------------------------------------------------------------------------


async def _shield_funds(ctx: Context) -> None:
    sender = ctx.account(ctx.args.sender, PARENTCHAIN, TRUSTED)
    signer = sender.require_keypair()
    incognito = ctx.account(ctx.args.incognito, TRUSTED, PARENTCHAIN)
    shard = None if ctx.args.shard is None else ShardId(parse_hex32(ctx.args.shard, "--shard"))
    client = await ctx.trusted(expected_mrenclave(ctx.args), shard)
    amount = client.token.parse(ctx.args.amount)
    with ctx.out.progress("shielding") as progress:
        inclusion, processed = await client.shield(signer, incognito.account_id, amount, progress)
    result: dict[str, Any] = {
        "from": sender.address,
        "incognito": incognito.address,
        "amount": amount,
        "shard": to_hex(client.shard),
        "block_number": inclusion.block_number,
        "block_hash": to_hex(inclusion.block_hash),
        "processed_in": processed.confirmed_in_number,
    }
    text = (
        f"shielded {client.token.format(amount)} from {sender.address} into shard "
        f"{to_hex(client.shard)} for {incognito.label}: block #{inclusion.block_number} "
        f"processed (confirmed in #{processed.confirmed_in_number})"
    )
    if incognito.keypair is not None:
        balance = await client.free_balance(incognito.keypair)
        result["incognito_free"] = balance
        text += f"; {incognito.label} now has {client.token.format(balance)} in the shard"
    ctx.out.result(text, result)


# -- events and metadata -------------------------------------------------------------------------


async def _listen(ctx: Context) -> None:
    max_events: int | None = ctx.args.events
    max_blocks: int | None = ctx.args.blocks
    for value, flag in ((max_events, "--events"), (max_blocks, "--blocks")):
        if value is not None and value < 1:
            raise InvalidInputError(f"{flag} must be at least 1")
    chain = await ctx.chain()
    events_seen = blocks_seen = 0
    async with contextlib.aclosing(chain.finalized_blocks()) as blocks:
        async for number in blocks:
            block_hash = await chain.block_hash(number)
            records = await chain.events(block_hash)
            ctx.out.line(f"#{number} {to_hex(block_hash)}: {len(records)} event(s)")
            for record in records:
                attrs = jsonable(record.attributes)
                ctx.out.line(f"  {record.pallet}.{record.name} {json.dumps(attrs)}")
                ctx.out.data(
                    {
                        "block_number": number,
                        "block_hash": to_hex(block_hash),
                        "pallet": record.pallet,
                        "event": record.name,
                        "attributes": attrs,
                    }
                )
                events_seen += 1
                if max_events is not None and events_seen >= max_events:
                    return
            blocks_seen += 1
            if max_blocks is not None and blocks_seen >= max_blocks:
                return


def metadata_summary(md: RuntimeMetadata) -> list[dict[str, Any]]:
    """Per pallet: index, calls (with argument names), events, storage items, constants."""

    def variants(type_id: int | None) -> list[dict[str, Any]]:
        if type_id is None:
            return []
        definition = md.type(type_id).definition
        if not isinstance(definition, VariantTypeDef):
            return []
        return [
            {
                "index": v.index,
                "name": v.name,
                "fields": [f.name or f.type_name or "" for f in v.fields],
            }
            for v in definition.variants
        ]

    out = []
    for pallet in sorted(md.pallets, key=lambda p: p.index):
        out.append(
            {
                "name": pallet.name,
                "index": pallet.index,
                "calls": variants(pallet.call_type_id),
                "events": variants(pallet.event_type_id),
                "storage": [s.name for s in pallet.storage],
                "constants": [c.name for c in pallet.constants],
            }
        )
    return out


async def _print_metadata(ctx: Context) -> None:
    md = await (await ctx.chain()).metadata()
    summary = metadata_summary(md)
    ctx.out.data(summary)
    for pallet in summary:
        ctx.out.line(f"{pallet['name']} (index {pallet['index']})")
        for kind in ("calls", "events"):
            for v in pallet[kind]:
                ctx.out.line(
                    f"  {kind[:-1]:5} {v['index']:>3} {v['name']}({', '.join(v['fields'])})"
                )
        if pallet["storage"]:
            ctx.out.line(f"  storage   {', '.join(pallet['storage'])}")
        if pallet["constants"]:
            ctx.out.line(f"  constants {', '.join(pallet['constants'])}")
