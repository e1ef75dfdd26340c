"""Account keys: sr25519 and ed25519 keypairs, Substrate secret URIs, MultiSignature.

Owns everything that turns secret material into an AccountId and a signature that Substrate
accepts, and back: `Keypair` (constructors from seed, mnemonic, secret URI, random), `verify`,
the `MultiSignature` wire type with its SCALE codec, and `verify_multi`.

Derivation is written here by hand because no maintained library does all of it in the way
Substrate's `sp-core` does: substrate-interface 1.8.1's `Keypair.create_from_uri` (which this
module matches for everything it supports, so AccountIds agree with polkadot.js and subkey)
refuses ed25519 paths, `///password` and `0x<seed>` roots. The rules, from `sp-core`:

- URI = `[phrase | 0x<32-byte seed hex>][/soft | //hard ...][///password]`; an empty phrase is
  the well-known dev phrase, so `//Alice` is `DEV_PHRASE//Alice`.
- phrase -> 32-byte mini-secret: BIP39 entropy through PBKDF2 with salt "mnemonic" + password
  (py-bip39-bindings `bip39_to_mini_secret`, Substrate's `substrate-bip39`).
- junction chain code: a decimal that fits u64 -> its 8 LE bytes; otherwise SCALE(str)
  (compact length + UTF-8); either way zero-padded to 32 bytes, or blake2_256 if longer.
- sr25519 soft/hard derivation: schnorrkel via py-sr25519-bindings (as substrate-interface).
- ed25519 hard derivation: seed' = blake2_256(SCALE(("Ed25519HDKD", seed, chain_code)));
  soft derivation does not exist for ed25519 and is refused.

sr25519 signs with the signing context b"substrate" (what the bindings hard-code and what
`sp_core::sr25519` uses). ed25519 uses `cryptography`; it verifies honest signatures exactly
like Substrate's ed25519-zebra and may differ only on deliberately malformed encodings
(ZIP-215 edge cases), which is harmless because only tocw workers verify client signatures.
"""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass, field

import bip39
import sr25519
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from tocw.primitives.errors import InvalidKeyError, InvalidSignatureError
from tocw.primitives.hashing import blake2_256
from tocw.primitives.scale import H512, Bytes, Enum, FixedBytes, struct
from tocw.primitives.ss58 import DEFAULT_SS58_FORMAT, ss58_encode
from tocw.primitives.types import AccountId

# Substrate's well-known development phrase (sp-core DEV_PHRASE); //Alice, //Bob, ... hang off it.
DEV_PHRASE = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"

PUBLIC_KEY_LEN = 32
SEED_LEN = 32
SIGNATURE_LEN = 64
ECDSA_SIGNATURE_LEN = 65
SR25519_SECRET_LEN = 64  # schnorrkel secret key: 32-byte scalar + 32-byte nonce

_JUNCTION_ID_LEN = 32
_MAX_U64 = (1 << 64) - 1
_ED25519_HDKD = b"Ed25519HDKD"
_URI_TAIL = re.compile(r"(?P<path>(?://?[^/]+)*)(?:///(?P<password>.*))?", re.DOTALL)
_JUNCTION = re.compile(r"(//?)([^/]+)")
_MNEMONIC_LANGUAGE = "en"


class KeyScheme(enum.Enum):
    """The signature schemes of a 32-byte Substrate account (MultiSigner minus ECDSA)."""

    SR25519 = "sr25519"
    ED25519 = "ed25519"


# --- MultiSignature (PROTOCOL.md "Primitive types") --------------------------------------------


@dataclass(frozen=True, slots=True)
class Ed25519Signature:
    signature: bytes

    def __post_init__(self) -> None:
        _check_len("ed25519 signature", self.signature, SIGNATURE_LEN)


@dataclass(frozen=True, slots=True)
class Sr25519Signature:
    signature: bytes

    def __post_init__(self) -> None:
        _check_len("sr25519 signature", self.signature, SIGNATURE_LEN)


@dataclass(frozen=True, slots=True)
class EcdsaSignature:
    signature: bytes

    def __post_init__(self) -> None:
        _check_len("ecdsa signature", self.signature, ECDSA_SIGNATURE_LEN)


MultiSignature = Ed25519Signature | Sr25519Signature | EcdsaSignature

MULTI_SIGNATURE_CODEC: Enum[MultiSignature] = Enum(
    "MultiSignature",
    {
        0: struct(Ed25519Signature, signature=H512),
        1: struct(Sr25519Signature, signature=H512),
        2: struct(EcdsaSignature, signature=FixedBytes(ECDSA_SIGNATURE_LEN)),
    },
)


def _check_len(what: str, value: bytes, size: int) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != size:
        got = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise InvalidSignatureError(f"{what} must be {size} bytes, got {got}")


# --- Keypair ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Keypair:
    """A signing key and its public key. Build it with the `from_*` constructors or `generate`.

    The secret is excluded from repr() and from equality (sr25519 derivation randomises the
    secret nonce, so two derivations of one URI are the same account with different secret
    bytes); two keypairs are equal when scheme and public key are.
    """

    scheme: KeyScheme
    public_key: bytes
    _secret: bytes = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.scheme, KeyScheme):
            raise InvalidKeyError(f"unknown key scheme {self.scheme!r}")
        if len(self.public_key) != PUBLIC_KEY_LEN:
            raise InvalidKeyError(f"public key must be {PUBLIC_KEY_LEN} bytes")
        want = SR25519_SECRET_LEN if self.scheme is KeyScheme.SR25519 else SEED_LEN
        if len(self._secret) != want:
            raise InvalidKeyError(f"{self.scheme.value} secret must be {want} bytes")

    # Constructors

    @classmethod
    def from_seed(cls, seed: bytes, scheme: KeyScheme = KeyScheme.SR25519) -> Keypair:
        """The keypair of a 32-byte seed (sr25519: mini-secret; ed25519: RFC 8032 seed)."""
        if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_LEN:
            raise InvalidKeyError(f"a seed is {SEED_LEN} bytes")
        seed = bytes(seed)
        if scheme is KeyScheme.SR25519:
            public, secret = sr25519.pair_from_seed(seed)
            return cls(scheme, bytes(public), bytes(secret))
        if scheme is KeyScheme.ED25519:
            public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
            return cls(scheme, public, seed)
        raise InvalidKeyError(f"unknown key scheme {scheme!r}")

    @classmethod
    def from_mnemonic(
        cls, phrase: str, scheme: KeyScheme = KeyScheme.SR25519, password: str = ""
    ) -> Keypair:
        """The keypair of an English BIP39 phrase, as Substrate derives it (no path)."""
        return cls.from_seed(_mini_secret(phrase, password), scheme)

    @classmethod
    def from_uri(cls, uri: str, scheme: KeyScheme = KeyScheme.SR25519) -> Keypair:
        """The keypair of a Substrate secret URI: `//Alice`, `<phrase>//hard/soft///password`,
        `0x<seed hex>//path`. Soft junctions exist for sr25519 only."""
        if not isinstance(uri, str):
            raise InvalidKeyError("a secret URI is a string")
        cut = uri.find("/")
        root, tail = (uri, "") if cut < 0 else (uri[:cut], uri[cut:])
        m = _URI_TAIL.fullmatch(tail)
        if m is None:
            raise InvalidKeyError("invalid derivation path in secret URI")
        path, password = m.group("path"), m.group("password")
        junctions = [(sep == "//", _chain_code(code)) for sep, code in _JUNCTION.findall(path)]
        root = root.strip() or DEV_PHRASE

        if root.startswith(("0x", "0X")):
            if password is not None:
                # sp-core silently ignores it; a password that changes nothing is a user error.
                raise InvalidKeyError("a ///password applies to mnemonic phrases, not to seeds")
            try:
                seed = bytes.fromhex(root[2:])
            except ValueError:
                raise InvalidKeyError("invalid hex seed in secret URI") from None
            pair = cls.from_seed(seed, scheme)
        else:
            pair = cls.from_mnemonic(root, scheme, password or "")
        for hard, chain_code in junctions:
            pair = pair._derive(hard, chain_code)
        return pair

    @classmethod
    def from_secret(cls, secret: bytes, scheme: KeyScheme) -> Keypair:
        """Inverse of `export_secret` (used to unseal a stored key)."""
        if scheme is KeyScheme.ED25519:
            return cls.from_seed(secret, scheme)
        if scheme is KeyScheme.SR25519:
            if not isinstance(secret, bytes | bytearray) or len(secret) != SR25519_SECRET_LEN:
                raise InvalidKeyError(f"an sr25519 secret key is {SR25519_SECRET_LEN} bytes")
            try:
                public = sr25519.public_from_secret_key(bytes(secret))
            except (ValueError, TypeError) as e:
                raise InvalidKeyError(f"invalid sr25519 secret key: {e}") from None
            return cls(scheme, bytes(public), bytes(secret))
        raise InvalidKeyError(f"unknown key scheme {scheme!r}")

    @classmethod
    def generate(cls, scheme: KeyScheme = KeyScheme.SR25519) -> Keypair:
        """A fresh random keypair from a 32-byte OS-random seed."""
        return cls.from_seed(secrets.token_bytes(SEED_LEN), scheme)

    # Accessors

    @property
    def account_id(self) -> AccountId:
        return AccountId(self.public_key)

    @property
    def ss58_address(self) -> str:
        """The generic-Substrate (format 42) address; `to_ss58` for other networks."""
        return ss58_encode(self.public_key, DEFAULT_SS58_FORMAT)

    def to_ss58(self, ss58_format: int) -> str:
        return ss58_encode(self.public_key, ss58_format)

    def export_secret(self) -> bytes:
        """The secret to seal: the 32-byte seed (ed25519) or 64-byte secret key (sr25519).

        The only way secret bytes leave a Keypair; callers must keep them inside the enclave.
        """
        return self._secret

    # Signing

    def sign(self, message: bytes) -> bytes:
        """A 64-byte signature over `message` (sr25519 under the context b"substrate")."""
        message = bytes(message)
        if self.scheme is KeyScheme.SR25519:
            return bytes(sr25519.sign((self.public_key, self._secret), message))
        return Ed25519PrivateKey.from_private_bytes(self._secret).sign(message)

    def multi_sign(self, message: bytes) -> MultiSignature:
        signature = self.sign(message)
        if self.scheme is KeyScheme.SR25519:
            return Sr25519Signature(signature)
        return Ed25519Signature(signature)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return verify(self.scheme, self.public_key, message, signature)

    # Derivation

    def _derive(self, hard: bool, chain_code: bytes) -> Keypair:
        if self.scheme is KeyScheme.ED25519:
            if not hard:
                raise InvalidKeyError("ed25519 has no soft derivation; use //hard junctions")
            payload = bytearray()
            Bytes.encode_into(_ED25519_HDKD, payload)  # SCALE(&str): compact length + bytes
            payload += self._secret + chain_code
            return Keypair.from_seed(blake2_256(bytes(payload)), KeyScheme.ED25519)
        derive = sr25519.hard_derive_keypair if hard else sr25519.derive_keypair
        _, public, secret = derive((chain_code, self.public_key, self._secret), b"")
        return Keypair(KeyScheme.SR25519, bytes(public), bytes(secret))


def _mini_secret(phrase: str, password: str) -> bytes:
    if not isinstance(phrase, str) or not isinstance(password, str):
        raise InvalidKeyError("mnemonic phrase and password are strings")
    try:
        return bytes(bip39.bip39_to_mini_secret(phrase, password, _MNEMONIC_LANGUAGE))
    except (ValueError, TypeError) as e:
        # The binding's message names the bad word's position, never the phrase itself.
        raise InvalidKeyError(f"invalid mnemonic phrase: {e}") from None


def _chain_code(code: str) -> bytes:
    """sp-core `DeriveJunction::soft`: u64 if the text parses as one, else SCALE(str)."""
    if _parses_as_u64(code):
        data = int(code).to_bytes(8, "little")
    else:
        out = bytearray()
        Bytes.encode_into(code.encode("utf-8"), out)
        data = bytes(out)
    if len(data) > _JUNCTION_ID_LEN:
        return blake2_256(data)
    return data.ljust(_JUNCTION_ID_LEN, b"\0")


def _parses_as_u64(code: str) -> bool:
    """Rust's `str::parse::<u64>`: ASCII digits with an optional leading '+', value < 2^64."""
    digits = code[1:] if code.startswith("+") else code
    return digits.isascii() and digits.isdigit() and int(digits) <= _MAX_U64


# --- Verification -------------------------------------------------------------------------------


def verify(scheme: KeyScheme, public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True iff `signature` is a valid `scheme` signature of `message` by `public_key`.

    Never raises: malformed keys or signatures (wrong length, not a curve point) are False.
    Unlike substrate-interface's Keypair.verify there is no retry with `<Bytes>` wrapping; that
    is a polkadot-js signRaw convention that Substrate's MultiSignature::verify does not accept.
    """
    try:
        public_key, message, signature = bytes(public_key), bytes(message), bytes(signature)
        if len(public_key) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
            return False
        if scheme is KeyScheme.SR25519:
            return bool(sr25519.verify(signature, message, public_key))
        if scheme is KeyScheme.ED25519:
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
            return True
    except (InvalidSignature, ValueError, TypeError, OverflowError):
        return False
    return False


def verify_multi(signature: MultiSignature, message: bytes, signer: AccountId) -> bool:
    """Substrate's `MultiSignature::verify` for a 32-byte AccountId signer.

    ECDSA is always False: an ECDSA account id is blake2_256 of a 33-byte compressed key, so
    checking it needs public-key recovery from the signature (secp256k1), which tocw does not
    implement. Clients sign with sr25519 or ed25519.
    """
    if isinstance(signature, Sr25519Signature):
        return verify(KeyScheme.SR25519, signer, message, signature.signature)
    if isinstance(signature, Ed25519Signature):
        return verify(KeyScheme.ED25519, signer, message, signature.signature)
    return False
