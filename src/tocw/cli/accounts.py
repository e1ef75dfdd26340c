"""`tocw new-account` and `tocw list-accounts`: the keystore's parentchain accounts.

    tocw new-account [--name NAME] [--uri URI]   store a new key (a fresh BIP39 phrase, or the
                                                 given secret URI); prints its SS58 address
    tocw list-accounts                           the stored accounts, as a table

Keys live in files under --keystore (default ~/.tocw/keystore), one 0600 file per key; set
TOCW_KEYSTORE_PASSWORD to encrypt new keys with it (see tocw.client.keystore). Accounts are
then named by their keystore name in every command, like dev URIs (//Alice), SS58 addresses and
0x-hex public keys. `tocw trusted new-account` / `list-accounts` do the same for incognito
accounts, which live apart from parentchain keys.
"""

from __future__ import annotations

import argparse

from tocw.cli.common import Context, add_command
from tocw.client.keystore import PARENTCHAIN, StoredKey
from tocw.primitives.types import to_hex


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    new = add_command(
        subparsers,
        "new-account",
        _new_account,
        "create a parentchain account in the keystore",
        __doc__,
    )
    add_new_account_options(new)
    add_command(
        subparsers, "list-accounts", _list_accounts, "list the keystore's parentchain accounts"
    )


def add_new_account_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="a name to refer to the account by (default: address)")
    parser.add_argument(
        "--uri",
        metavar="URI",
        help="store this secret URI (e.g. //Eve or a phrase) instead of a fresh phrase",
    )


def key_json(key: StoredKey) -> dict[str, object]:
    return {
        "name": key.name,
        "address": key.address,
        "public": to_hex(key.account_id),
        "scheme": key.scheme.value,
        "encrypted": key.encrypted,
    }


async def new_account(ctx: Context, namespace: str) -> None:
    store = ctx.keystore(namespace)
    key = store.create(ctx.args.name, uri=ctx.args.uri)
    ctx.out.result(key.address, key_json(key))
    ctx.out.note(f"stored as {key.name!r} in {key.path}")


async def list_accounts(ctx: Context, namespace: str, title: str) -> None:
    keys = ctx.keystore(namespace).stored()
    ctx.out.data([key_json(k) for k in keys])
    if not keys:
        ctx.out.note(f"no accounts in {ctx.keystore(namespace).dir}")
        return
    rows = [(k.name, k.address, to_hex(k.account_id), "yes" if k.encrypted else "no") for k in keys]
    ctx.out.table(title, ("name", "address", "public key", "encrypted"), rows)


async def _new_account(ctx: Context) -> None:
    await new_account(ctx, PARENTCHAIN)


async def _list_accounts(ctx: Context) -> None:
    await list_accounts(ctx, PARENTCHAIN, "parentchain accounts")
