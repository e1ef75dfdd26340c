"""tocw.client.accounts: every way a user names an account."""

from __future__ import annotations

from pathlib import Path

import pytest

from tocw.client.accounts import resolve_account
from tocw.client.errors import UnknownAccountError
from tocw.client.keystore import Keystore
from tocw.primitives.keys import Keypair

ALICE = Keypair.from_uri("//Alice")
# Well-known dev addresses (subkey inspect //Alice, //Bob).
ALICE_SS58 = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
BOB_SS58 = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"


@pytest.fixture(autouse=True)
def _no_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOCW_KEYSTORE_PASSWORD", raising=False)


def test_accounts_dev_uri_has_keypair() -> None:
    """//Alice resolves to Alice's account with her keypair."""
    account = resolve_account("//Alice")
    assert account.address == ALICE_SS58
    assert account.require_keypair().account_id == ALICE.account_id


def test_accounts_ss58_and_hex_are_public_only() -> None:
    """An address or hex key gives the account; signing with it is a clear error."""
    by_ss58 = resolve_account(BOB_SS58)
    by_hex = resolve_account("0x" + bytes(by_ss58.account_id).hex())
    assert by_ss58.account_id == by_hex.account_id
    assert by_ss58.keypair is None
    with pytest.raises(UnknownAccountError, match="no secret key"):
        by_ss58.require_keypair()


def test_accounts_keystore_name_and_address_get_keypair(tmp_path: Path) -> None:
    """A keystore name, or the address of a stored key, comes with the stored keypair."""
    store = Keystore(tmp_path)
    key = store.create("zed")
    assert resolve_account("zed", store).keypair is not None
    assert resolve_account(key.address, store).require_keypair().account_id == key.account_id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("nobody", "unknown account"),
        ("0x1234", "32 bytes"),
        ("//Alice/", "secret URI"),
        (BOB_SS58[:-1] + "x", "unknown account"),
    ],
)
def test_accounts_unknown_forms_rejected(tmp_path: Path, text: str, message: str) -> None:
    """Anything else is UnknownAccountError with the accepted forms."""
    with pytest.raises(UnknownAccountError, match=message):
        resolve_account(text, Keystore(tmp_path))
