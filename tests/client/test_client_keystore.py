"""tocw.client.keystore: private key files, optional encryption, and lookups."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tocw.client.errors import KeystoreError, UnknownAccountError
from tocw.client.keystore import PARENTCHAIN, TRUSTED, Keystore
from tocw.primitives.keys import Keypair

ALICE = Keypair.from_uri("//Alice")


@pytest.fixture(autouse=True)
def _no_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOCW_KEYSTORE_PASSWORD", raising=False)


def test_keystore_create_writes_private_file(tmp_path: Path) -> None:
    """A new key is a 0600 file in a 0700 directory, named by its address, holding a phrase."""
    store = Keystore(tmp_path / "ks")
    key = store.create("carol")
    assert stat.S_IMODE(key.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.dir.stat().st_mode) == 0o700
    assert key.path.name == f"{key.address}.json"
    data = json.loads(key.path.read_text())
    assert len(data["secret_uri"].split()) == 12
    assert store.keypair(key).account_id == key.account_id


def test_keystore_find_by_name_address_and_hex(tmp_path: Path) -> None:
    """find resolves a name, an SS58 address or a 0x public key; unknown text is None."""
    store = Keystore(tmp_path)
    key = store.create("dave")
    assert store.find("dave") == key
    assert store.find(key.address) == key
    assert store.find("0x" + bytes(key.account_id).hex()) == key
    assert store.find("nobody") is None
    assert store.find_account(key.account_id) == key


def test_keystore_namespaces_are_separate(tmp_path: Path) -> None:
    """Parentchain and trusted keys live apart, as in Integritee's CLI."""
    Keystore(tmp_path, TRUSTED).create("incognito")
    assert Keystore(tmp_path, PARENTCHAIN).stored() == []
    assert [k.name for k in Keystore(tmp_path, TRUSTED).stored()] == ["incognito"]


def test_keystore_create_from_uri_and_refuses_duplicates(tmp_path: Path) -> None:
    """A given secret URI is stored as is; a second key with the same name or account fails."""
    store = Keystore(tmp_path)
    key = store.create("alice", uri="//Alice")
    assert key.account_id == ALICE.account_id
    with pytest.raises(KeystoreError, match="exists already"):
        store.create("alice")
    with pytest.raises(KeystoreError, match="stored already"):
        store.create("alice2", uri="//Alice")
    with pytest.raises(UnknownAccountError, match="secret URI"):
        store.create("bad", uri="//Alice/")
    with pytest.raises(KeystoreError, match="invalid key name"):
        store.create("no spaces")


def test_keystore_refuses_a_readable_key_file(tmp_path: Path) -> None:
    """Like ssh, a key file that others may read is refused with the fix in the message."""
    store = Keystore(tmp_path)
    key = store.create("eve")
    os.chmod(key.path, 0o644)
    with pytest.raises(KeystoreError, match="chmod 600"):
        store.stored()


def test_keystore_encrypts_with_password(tmp_path: Path) -> None:
    """With a password the secret is encrypted; reading needs the same password."""
    key = Keystore(tmp_path, password="s3cret").create("ferdie", uri="//Ferdie")
    text = key.path.read_text()
    assert "//Ferdie" not in text
    assert key.encrypted
    assert Keystore(tmp_path, password="s3cret").keypair(key).account_id == key.account_id
    with pytest.raises(KeystoreError, match="wrong password"):
        Keystore(tmp_path, password="nope").keypair(key)
    with pytest.raises(KeystoreError, match="TOCW_KEYSTORE_PASSWORD"):
        Keystore(tmp_path).keypair(key)
    # Listing needs no password.
    assert [k.name for k in Keystore(tmp_path).stored()] == ["ferdie"]


def test_keystore_password_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TOCW_KEYSTORE_PASSWORD is the default password."""
    monkeypatch.setenv("TOCW_KEYSTORE_PASSWORD", "env-pw")
    key = Keystore(tmp_path).create("bob", uri="//Bob")
    assert key.encrypted
    assert Keystore(tmp_path, password="env-pw").keypair(key).account_id == key.account_id


def test_keystore_ciphertext_bound_to_its_key(tmp_path: Path) -> None:
    """An encrypted secret moved into another key's file does not decrypt."""
    store = Keystore(tmp_path, password="pw")
    one, two = store.create("one"), store.create("two")
    data_one, data_two = json.loads(one.path.read_text()), json.loads(two.path.read_text())
    data_two["encrypted"] = data_one["encrypted"]
    two.path.write_text(json.dumps(data_two))
    with pytest.raises(KeystoreError, match="wrong password"):
        store.keypair(two)


def test_keystore_rejects_malformed_files(tmp_path: Path) -> None:
    """A file that is not a key file is a KeystoreError naming it, never a KeyError."""
    store = Keystore(tmp_path)
    store.dir.mkdir(parents=True)
    bad = store.dir / "x.json"
    for content in (
        "not json",
        "[]",
        '{"version": 1}',
        '{"version": 1, "public": "0x00", "scheme": "sr25519", "name": "x"}',
    ):
        bad.write_text(content)
        os.chmod(bad, 0o600)
        with pytest.raises(KeystoreError, match=r"x\.json"):
            store.stored()


def test_keystore_detects_tampered_secret(tmp_path: Path) -> None:
    """A secret that does not derive the stored public key is refused."""
    store = Keystore(tmp_path)
    key = store.create("gina", uri="//Alice")
    data = json.loads(key.path.read_text())
    data["secret_uri"] = "//Bob"
    key.path.write_text(json.dumps(data))
    with pytest.raises(KeystoreError, match="does not match"):
        store.keypair(key)
