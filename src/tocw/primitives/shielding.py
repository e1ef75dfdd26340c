"""The shielding key: RSA-3072 with OAEP(SHA-256), chunked exactly as Integritee's.

Owns the private `ShieldingKey` (generated and sealed by the enclave, shared by the workers of a
shard) and the `ShieldingPublicKey` that clients fetch as JSON and encrypt to (PROTOCOL.md
"Shielding key and encryption"). RSA itself is `cryptography`'s; the framing around it is
Integritee's `sgx_crypto_helper::rsa3072` (`encrypt_buffer` / `decrypt_buffer`):

- OAEP with SHA-256 for both the hash and MGF1, empty label;
- plaintext cut into chunks of 318 bytes (= 384 - 2*32 - 2, the OAEP maximum), each chunk one
  384-byte block, blocks concatenated; decryption concatenates the decrypted blocks;
- public key JSON is serde_json of `Rsa3072PubKey { n: [u8; 384], e: [u8; 4] }`, both
  LITTLE-endian byte arrays: `{"n":[...],"e":[...]}` with no spaces.

tocw: an empty plaintext encrypts to one block holding an encrypted empty chunk, and a
ciphertext must be a positive multiple of 384 bytes. Integritee's `encrypt_buffer` turns an
empty plaintext into an empty ciphertext (zero chunks) and its `decrypt_buffer` accepts that;
tocw refuses empty ciphertexts (PROTOCOL.md), so it never emits one. Integritee decrypts our
one-block form to the empty plaintext, so the wire stays compatible in the direction that
matters; real payloads (SCALE of an operation or an AccountId) are never empty anyway.

tocw generates e = 65537; Integritee generates e = 16777217. Both parse here, since clients read
e from the key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tocw.primitives.errors import InvalidCiphertextError, InvalidKeyError

RSA_BITS = 3072
BLOCK_LEN = RSA_BITS // 8  # 384: one ciphertext block
CHUNK_LEN = BLOCK_LEN - 2 * 32 - 2  # 318: the OAEP(SHA-256) maximum plaintext per block
PUBLIC_EXPONENT = 65537
EXPONENT_LEN = 4  # Integritee's `e: [u8; SGX_RSA3072_PUB_EXP_SIZE]`
# A valid key JSON is ~1.6 KB (388 small integers); refuse megabytes before parsing them.
MAX_KEY_JSON_LEN = 16 * 1024


def _oaep() -> padding.OAEP:
    return padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
    )


class ShieldingPublicKey:
    """What a client encrypts to. Immutable; equal when modulus and exponent are."""

    __slots__ = ("_key", "e", "n")

    n: int
    e: int
    _key: rsa.RSAPublicKey

    def __init__(self, key: rsa.RSAPublicKey) -> None:
        numbers = key.public_numbers()
        if key.key_size != RSA_BITS:
            raise InvalidKeyError(f"shielding key must be RSA-{RSA_BITS}, got {key.key_size} bits")
        if numbers.e >> (8 * EXPONENT_LEN):
            raise InvalidKeyError(f"public exponent does not fit {EXPONENT_LEN} bytes")
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "n", numbers.n)
        object.__setattr__(self, "e", numbers.e)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("ShieldingPublicKey is immutable")

    @classmethod
    def from_numbers(cls, n: int, e: int) -> ShieldingPublicKey:
        """A key from modulus and exponent; InvalidKeyError unless RSA-3072 with a sane e."""
        if n.bit_length() != RSA_BITS:
            raise InvalidKeyError(f"modulus must be exactly {RSA_BITS} bits, got {n.bit_length()}")
        if e < 3 or e % 2 == 0 or e >> (8 * EXPONENT_LEN):
            raise InvalidKeyError(f"public exponent {e} is not an odd number in [3, 2^32)")
        try:
            key = rsa.RSAPublicNumbers(e, n).public_key()
        except ValueError as err:
            raise InvalidKeyError(f"invalid RSA public key: {err}") from None
        return cls(key)

    def encrypt(self, plaintext: bytes) -> bytes:
        """Integritee's `encrypt_buffer`: 318-byte chunks, one 384-byte OAEP block each."""
        plaintext = bytes(plaintext)
        chunks = [plaintext[i : i + CHUNK_LEN] for i in range(0, len(plaintext), CHUNK_LEN)]
        oaep = _oaep()
        return b"".join(self._key.encrypt(chunk, oaep) for chunk in chunks or [b""])

    def to_json(self) -> str:
        """`{"n":[..384 LE bytes..],"e":[..4 LE bytes..]}` byte for byte as Integritee's serde."""
        doc = {
            "n": list(self.n.to_bytes(BLOCK_LEN, "little")),
            "e": list(self.e.to_bytes(EXPONENT_LEN, "little")),
        }
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ShieldingPublicKey:
        """Parse and validate a key as `author_getShieldingKey` returns it.

        `n` must be 384 bytes; `e` may be 1 to 4 bytes (Integritee always sends 4; other
        clients serialise a `Vec<u8>`). Anything else is an InvalidKeyError.
        """
        if len(text) > MAX_KEY_JSON_LEN:
            raise InvalidKeyError(f"shielding key JSON too long ({len(text)} bytes)")
        try:
            doc: Any = json.loads(text)
        except (ValueError, TypeError) as err:  # JSONDecodeError and bad UTF-8 are ValueErrors
            raise InvalidKeyError(f"shielding key is not JSON: {err}") from None
        if not isinstance(doc, dict) or set(doc) != {"n", "e"}:
            raise InvalidKeyError('shielding key JSON must be an object with exactly "n" and "e"')
        n_bytes = _byte_list(doc["n"], "n", BLOCK_LEN, BLOCK_LEN)
        e_bytes = _byte_list(doc["e"], "e", 1, EXPONENT_LEN)
        return cls.from_numbers(
            int.from_bytes(n_bytes, "little"), int.from_bytes(e_bytes, "little")
        )

    def fingerprint(self) -> bytes:
        """sha256 of the modulus (384 bytes, big-endian): a short name for logs and the demo."""
        return hashlib.sha256(self.n.to_bytes(BLOCK_LEN, "big")).digest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ShieldingPublicKey):
            return NotImplemented
        return (self.n, self.e) == (other.n, other.e)

    def __hash__(self) -> int:
        return hash((self.n, self.e))

    def __repr__(self) -> str:
        return f"ShieldingPublicKey(e={self.e}, fingerprint={self.fingerprint().hex()[:16]})"


def _byte_list(value: object, name: str, min_len: int, max_len: int) -> bytes:
    if not isinstance(value, list) or not min_len <= len(value) <= max_len:
        size = f"{min_len}" if min_len == max_len else f"{min_len} to {max_len}"
        raise InvalidKeyError(f'"{name}" must be a list of {size} bytes')
    # bool is an int subclass; JSON true/false are not bytes.
    if not all(type(b) is int and 0 <= b <= 255 for b in value):
        raise InvalidKeyError(f'"{name}" must hold integers 0..255')
    return bytes(value)


class ShieldingKey:
    """The private shielding key. Lives only inside the enclave; sealed as PKCS#8 DER."""

    __slots__ = ("_key", "_public")

    _key: rsa.RSAPrivateKey
    _public: ShieldingPublicKey

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key
        self._public = ShieldingPublicKey(key.public_key())

    @classmethod
    def generate(cls, public_exponent: int = PUBLIC_EXPONENT) -> ShieldingKey:
        return cls(rsa.generate_private_key(public_exponent=public_exponent, key_size=RSA_BITS))

    def public_key(self) -> ShieldingPublicKey:
        return self._public

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Integritee's `decrypt_buffer`; any bad length or block is an InvalidCiphertextError."""
        ciphertext = bytes(ciphertext)
        if not ciphertext or len(ciphertext) % BLOCK_LEN:
            raise InvalidCiphertextError(
                f"ciphertext length {len(ciphertext)} is not a positive multiple of {BLOCK_LEN}"
            )
        oaep = _oaep()
        out = bytearray()
        for offset in range(0, len(ciphertext), BLOCK_LEN):
            try:
                out += self._key.decrypt(ciphertext[offset : offset + BLOCK_LEN], oaep)
            except ValueError:
                # One message for every failure cause, so callers cannot build a padding oracle.
                raise InvalidCiphertextError(
                    f"ciphertext block {offset // BLOCK_LEN} does not decrypt"
                ) from None
        return bytes(out)

    def to_der(self) -> bytes:
        """Unencrypted PKCS#8 DER, for the enclave to seal (never to write out in clear)."""
        return self._key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_der(cls, der: bytes) -> ShieldingKey:
        try:
            key = serialization.load_der_private_key(bytes(der), password=None)
        except (ValueError, TypeError) as err:
            raise InvalidKeyError(f"not a DER private key: {err}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidKeyError("sealed shielding key is not an RSA key")
        return cls(key)

    def __repr__(self) -> str:
        return f"ShieldingKey(public={self._public!r})"
