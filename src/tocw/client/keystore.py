"""The client's keystore: account keys in files under one directory, 0600, optionally encrypted.

Owns `Keystore` and `StoredKey`. Layout: `<root>/<namespace>/<ss58 address>.json`, where the
namespace separates parentchain accounts (`parentchain`) from incognito accounts used only
inside the worker (`trusted`), as Integritee's CLI keeps `my_keystore` and
`my_trusted_keystore` apart. One JSON file per key:

    {"version": 1, "name": "bob-incognito", "address": "5F..", "public": "0x..",
     "scheme": "sr25519", "created": "2026-01-01T00:00:00Z",
     "secret_uri": "<BIP39 phrase or secret URI>"}               # or, with a password:
     "encrypted": {"kdf": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "0x..",
                   "cipher": "aes-256-gcm", "nonce": "0x..", "ciphertext": "0x.."}

The secret is a secret URI (a fresh 12-word BIP39 phrase for generated keys), so a key can be
imported into any Substrate wallet. Like Integritee's CLI the default is a plain file; tocw makes
it 0600 in a 0700 directory, refuses to read a key file that others can read (as ssh does), and
encrypts the secret when TOCW_KEYSTORE_PASSWORD is set (scrypt, then AES-256-GCM with the public
key as associated data, so a ciphertext cannot be moved to another key's file). Public fields
stay in clear so that listing needs no password.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import bip39
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tocw.client.errors import KeystoreError, UnknownAccountError
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.keys import Keypair, KeyScheme
from tocw.primitives.ss58 import ss58_encode
from tocw.primitives.types import AccountId, from_hex, to_hex

PASSWORD_ENV: Final = "TOCW_KEYSTORE_PASSWORD"
PARENTCHAIN: Final = "parentchain"
TRUSTED: Final = "trusted"
NAMESPACES: Final = (PARENTCHAIN, TRUSTED)
FORMAT_VERSION: Final = 1
MNEMONIC_WORDS: Final = 12
SCRYPT_N: Final = 1 << 15
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MAX_FILE: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class StoredKey:
    """The public facts of one key file (reading them needs no password)."""

    name: str
    account_id: AccountId
    scheme: KeyScheme
    encrypted: bool
    path: Path

    @property
    def address(self) -> str:
        return ss58_encode(self.account_id)


class Keystore:
    """The keys of one namespace under a keystore directory.

    `password`: encrypts new keys and decrypts stored ones; None reads TOCW_KEYSTORE_PASSWORD
    (an empty variable means no password).
    """

    def __init__(self, root: Path, namespace: str = PARENTCHAIN, password: str | None = None):
        if namespace not in NAMESPACES:
            raise ValueError(f"keystore namespace must be one of {NAMESPACES}")
        self.root = Path(root).expanduser()
        self.namespace = namespace
        self.dir = self.root / namespace
        if password is None:
            password = os.environ.get(PASSWORD_ENV) or None
        self._password = password

    # -- reading --

    def stored(self) -> list[StoredKey]:
        """Every key of the namespace, by name; an absent directory holds none."""
        found = [self._read_public(path) for path in self._files()]
        return sorted(found, key=lambda k: (k.name.lower(), k.address))

    def find(self, text: str) -> StoredKey | None:
        """The key named `text`, or whose SS58 address or 0x-hex public key is `text`."""
        text = text.strip()
        for key in self.stored():
            if text in (key.name, key.address) or text.lower() == to_hex(key.account_id):
                return key
        return None

    def find_account(self, account: AccountId) -> StoredKey | None:
        for key in self.stored():
            if key.account_id == account:
                return key
        return None

    def keypair(self, key: StoredKey) -> Keypair:
        """The keypair of a stored key (decrypting it if it is encrypted)."""
        data = self._load(key.path)
        uri = self._secret_uri(data, key)
        try:
            pair = Keypair.from_uri(uri, key.scheme)
        except PrimitivesError as e:
            raise KeystoreError(f"{key.path}: the stored secret is not usable: {e}") from None
        if pair.account_id != key.account_id:
            raise KeystoreError(f"{key.path}: the stored secret does not match its public key")
        return pair

    # -- writing --

    def create(
        self,
        name: str | None = None,
        *,
        uri: str | None = None,
        scheme: KeyScheme = KeyScheme.SR25519,
    ) -> StoredKey:
        """Store a new key: a fresh BIP39 phrase, or the given secret URI (e.g. "//Eve")."""
        secret_uri = uri if uri is not None else bip39.bip39_generate(MNEMONIC_WORDS)
        try:
            pair = Keypair.from_uri(secret_uri, scheme)
        except PrimitivesError as e:
            raise UnknownAccountError(f"not a usable secret URI: {e}") from None
        address = pair.ss58_address
        if name is None:
            name = address[:8]
        if not _NAME.fullmatch(name):
            raise KeystoreError(
                f"invalid key name {name!r}: 1-64 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        for existing in self.stored():
            if existing.name == name:
                raise KeystoreError(f"a key named {name!r} exists already ({existing.address})")
            if existing.account_id == pair.account_id:
                raise KeystoreError(f"{address} is stored already, as {existing.name!r}")
        record: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "name": name,
            "address": address,
            "public": to_hex(pair.account_id),
            "scheme": scheme.value,
            "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if self._password:
            record["encrypted"] = _encrypt(secret_uri, self._password, pair.account_id)
        else:
            record["secret_uri"] = secret_uri
        path = self.dir / f"{address}.json"
        self._ensure_dir()
        _write_private(path, json.dumps(record, indent=2).encode("utf-8") + b"\n")
        return StoredKey(name, pair.account_id, scheme, bool(self._password), path)

    # -- internals --

    def _files(self) -> Iterator[Path]:
        if not self.dir.is_dir():
            return iter(())
        return iter(sorted(p for p in self.dir.iterdir() if p.suffix == ".json"))

    def _ensure_dir(self) -> None:
        # Only directories created here are made private; an existing root given by the user
        # (even /tmp) keeps its mode, the namespace directory inside it is ours.
        try:
            self.root.parent.mkdir(parents=True, exist_ok=True)
            self.root.mkdir(mode=0o700, exist_ok=True)
            self.dir.mkdir(mode=0o700, exist_ok=True)
            os.chmod(self.dir, 0o700)
        except OSError as e:
            raise KeystoreError(f"cannot create the keystore {self.dir}: {e.strerror}") from None

    def _load(self, path: Path) -> dict[str, Any]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as e:
            raise KeystoreError(f"cannot read {path}: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise KeystoreError(f"{path} is not a regular file")
            if st.st_mode & 0o077:
                raise KeystoreError(
                    f"{path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                    f"a key file must be private: chmod 600 {path}"
                )
            if st.st_size > _MAX_FILE:
                raise KeystoreError(f"{path} is too large to be a key file")
            raw = os.read(fd, _MAX_FILE + 1)
        finally:
            os.close(fd)
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise KeystoreError(f"{path} is not a key file (invalid JSON: {e})") from None
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise KeystoreError(f"{path} is not a version {FORMAT_VERSION} tocw key file")
        return data

    def _read_public(self, path: Path) -> StoredKey:
        data = self._load(path)
        try:
            account = AccountId(from_hex(str(data["public"])))
            scheme = KeyScheme(str(data["scheme"]))
            name = str(data["name"])
        except (KeyError, ValueError) as e:
            raise KeystoreError(f"{path} lacks a valid {e} field") from None
        if len(account) != 32:
            raise KeystoreError(f"{path}: the public key is not 32 bytes")
        return StoredKey(name, account, scheme, "encrypted" in data, path)

    def _secret_uri(self, data: dict[str, Any], key: StoredKey) -> str:
        if "secret_uri" in data:
            return str(data["secret_uri"])
        box = data.get("encrypted")
        if not isinstance(box, dict):
            raise KeystoreError(f"{key.path} holds no secret")
        if not self._password:
            raise KeystoreError(
                f"key {key.name!r} is encrypted: set {PASSWORD_ENV} to its password"
            )
        return _decrypt(box, self._password, key.account_id, key.path)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode("utf-8"))


def _encrypt(secret: str, password: str, account: AccountId) -> dict[str, Any]:
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    ciphertext = AESGCM(key).encrypt(nonce, secret.encode("utf-8"), bytes(account))
    return {
        "kdf": "scrypt",
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": to_hex(salt),
        "cipher": "aes-256-gcm",
        "nonce": to_hex(nonce),
        "ciphertext": to_hex(ciphertext),
    }


def _decrypt(box: dict[str, Any], password: str, account: AccountId, path: Path) -> str:
    try:
        if box.get("kdf") != "scrypt" or box.get("cipher") != "aes-256-gcm":
            raise ValueError("unknown kdf or cipher")
        n, r, p = int(box["n"]), int(box["r"]), int(box["p"])
        if not (2 <= n <= 1 << 20 and 1 <= r <= 32 and 1 <= p <= 16):
            raise ValueError("scrypt parameters out of range")
        key = _scrypt(password, from_hex(str(box["salt"])), n, r, p)
        plain = AESGCM(key).decrypt(
            from_hex(str(box["nonce"])), from_hex(str(box["ciphertext"])), bytes(account)
        )
    except InvalidTag:
        raise KeystoreError(f"wrong password for {path} ({PASSWORD_ENV})") from None
    except (KeyError, ValueError, TypeError) as e:
        raise KeystoreError(f"{path}: malformed encrypted secret ({e})") from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise KeystoreError(f"{path}: the decrypted secret is not text") from None


def _write_private(path: Path, data: bytes) -> None:
    """Write a new 0600 file atomically (temp file, fsync, rename); never overwrite."""
    if path.exists():
        raise KeystoreError(f"{path} exists already")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)  # fails instead of replacing a file created meanwhile
    except FileExistsError:
        raise KeystoreError(f"{path} exists already") from None
    except OSError as e:
        raise KeystoreError(f"cannot write {path}: {e.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
