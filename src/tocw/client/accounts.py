"""Accounts as users name them: dev URIs, SS58 addresses, hex public keys, keystore names.

Owns `Account` (an AccountId, with its keypair when the secret is known) and `resolve_account`.
The forms, tried in this order:

    //Alice, //Alice//stash, <12 words>//hard///password, 0x<seed>//x   secret URI -> keypair
    0x<64 hex digits>                                                  public key
    a name in the keystore                                             keypair from the file
    5FHneW46..                                                         SS58 address

A public key or address that the keystore holds comes with its keypair, so `tocw trusted
balance 5F..` works for an account created with `tocw trusted new-account`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tocw.client.errors import UnknownAccountError
from tocw.client.keystore import Keystore
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.keys import Keypair
from tocw.primitives.ss58 import parse_account, ss58_encode
from tocw.primitives.types import AccountId

_HEX_ACCOUNT_LEN = 66  # "0x" + 64 hex digits


@dataclass(frozen=True, slots=True)
class Account:
    """An account and, when known, the keypair that signs for it. `label` is what the user
    typed (shown in messages and tables)."""

    account_id: AccountId
    keypair: Keypair | None
    label: str

    @property
    def address(self) -> str:
        return ss58_encode(self.account_id)

    def require_keypair(self) -> Keypair:
        """The keypair; UnknownAccountError when only the public key is known."""
        if self.keypair is None:
            raise UnknownAccountError(
                f"no secret key for {self.label} ({self.address}): give a dev URI (//Alice), "
                "or a keystore name of an account created with new-account"
            )
        return self.keypair

    @classmethod
    def of(cls, keypair: Keypair, label: str | None = None) -> Account:
        return cls(keypair.account_id, keypair, label or keypair.ss58_address)


def _is_secret_uri(text: str) -> bool:
    return text.startswith("/") or "//" in text or " " in text.strip()


def resolve_account(text: str, keystore: Keystore | None = None) -> Account:
    """The account a user means by `text`; UnknownAccountError if it is none of the forms."""
    text = text.strip()
    if not text:
        raise UnknownAccountError("empty account")
    if _is_secret_uri(text):
        try:
            return Account.of(Keypair.from_uri(text), text)
        except PrimitivesError as e:
            raise UnknownAccountError(f"{text!r} is not a valid secret URI: {e}") from None
    if keystore is not None:
        stored = keystore.find(text)
        if stored is not None:
            return Account(stored.account_id, keystore.keypair(stored), text)
    if text.startswith(("0x", "0X")) and len(text) != _HEX_ACCOUNT_LEN:
        raise UnknownAccountError(f"{text!r}: a hex public key is 32 bytes (64 hex digits)")
    try:
        account = parse_account(text)
    except PrimitivesError:
        where = f" or a name in the keystore {keystore.dir}" if keystore is not None else ""
        raise UnknownAccountError(
            f"unknown account {text!r}: not a dev URI (//Alice), SS58 address, "
            f"0x-hex public key{where}"
        ) from None
    keypair = None
    if keystore is not None:
        stored = keystore.find_account(account)
        if stored is not None:
            keypair = keystore.keypair(stored)
    return Account(account, keypair, text)
