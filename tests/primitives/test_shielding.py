"""Shielding key: Integritee's RSA-3072 OAEP framing, checked against an independent RSA-OAEP
implementation (pycryptodome's PKCS1_OAEP with SHA-256) in both directions."""

from __future__ import annotations

import json

import pytest
from Crypto.Cipher import PKCS1_OAEP
from Crypto.Hash import SHA256
from Crypto.PublicKey import RSA

from tocw.primitives.errors import InvalidCiphertextError, InvalidKeyError
from tocw.primitives.shielding import (
    BLOCK_LEN,
    CHUNK_LEN,
    ShieldingKey,
    ShieldingPublicKey,
)

SIZES = [1, CHUNK_LEN, CHUNK_LEN + 1, 5000]


@pytest.fixture(scope="module")
def key() -> ShieldingKey:
    """One RSA-3072 key for the module: generation is the slow part."""
    return ShieldingKey.generate()


@pytest.fixture(scope="module")
def pycryptodome_key(key: ShieldingKey) -> RSA.RsaKey:
    return RSA.import_key(key.to_der())


def _blocks(data: bytes) -> list[bytes]:
    return [data[i : i + BLOCK_LEN] for i in range(0, len(data), BLOCK_LEN)]


def _plaintext(size: int) -> bytes:
    return bytes((i * 7 + 3) % 256 for i in range(size))


def test_shielding_constants_match_integritee() -> None:
    """384-byte blocks; 318 = 384 - 2*32 - 2 plaintext bytes per block (sgx_crypto_helper)."""
    assert (BLOCK_LEN, CHUNK_LEN) == (384, 318)


@pytest.mark.parametrize("size", SIZES)
def test_shielding_encrypt_decrypts_with_pycryptodome(
    key: ShieldingKey, pycryptodome_key: RSA.RsaKey, size: int
) -> None:
    """Our ciphertext is ceil(n/318) OAEP-SHA256 blocks that pycryptodome decrypts."""
    plaintext = _plaintext(size)
    ciphertext = key.public_key().encrypt(plaintext)
    assert len(ciphertext) == BLOCK_LEN * -(-size // CHUNK_LEN)
    oaep = PKCS1_OAEP.new(pycryptodome_key, hashAlgo=SHA256)
    assert b"".join(oaep.decrypt(block) for block in _blocks(ciphertext)) == plaintext


@pytest.mark.parametrize("size", SIZES)
def test_shielding_decrypts_pycryptodome_ciphertext(
    key: ShieldingKey, pycryptodome_key: RSA.RsaKey, size: int
) -> None:
    """Ciphertext chunked and encrypted by pycryptodome decrypts with ours."""
    plaintext = _plaintext(size)
    oaep = PKCS1_OAEP.new(pycryptodome_key.public_key(), hashAlgo=SHA256)
    chunks = [plaintext[i : i + CHUNK_LEN] for i in range(0, size, CHUNK_LEN)]
    ciphertext = b"".join(oaep.encrypt(chunk) for chunk in chunks)
    assert key.decrypt(ciphertext) == plaintext


def test_shielding_encryption_is_randomised(key: ShieldingKey) -> None:
    """OAEP is randomised: the same plaintext gives different ciphertexts."""
    public = key.public_key()
    assert public.encrypt(b"same") != public.encrypt(b"same")


def test_shielding_empty_plaintext_is_one_block(
    key: ShieldingKey, pycryptodome_key: RSA.RsaKey
) -> None:
    """tocw encrypts b"" as one block of an encrypted empty chunk (never an empty ciphertext)."""
    ciphertext = key.public_key().encrypt(b"")
    assert len(ciphertext) == BLOCK_LEN
    assert key.decrypt(ciphertext) == b""
    assert PKCS1_OAEP.new(pycryptodome_key, hashAlgo=SHA256).decrypt(ciphertext) == b""


@pytest.mark.parametrize("length", [0, 1, BLOCK_LEN - 1, BLOCK_LEN + 1, 2 * BLOCK_LEN - 5])
def test_shielding_decrypt_rejects_bad_length(key: ShieldingKey, length: int) -> None:
    """A ciphertext that is not a positive multiple of 384 bytes is invalid."""
    with pytest.raises(InvalidCiphertextError, match="multiple of 384"):
        key.decrypt(b"\x01" * length)


@pytest.mark.parametrize("position", [0, BLOCK_LEN // 2, BLOCK_LEN - 1, BLOCK_LEN + 7])
def test_shielding_decrypt_rejects_flipped_byte(key: ShieldingKey, position: int) -> None:
    """Flipping one byte in any block fails OAEP with InvalidCiphertextError."""
    ciphertext = bytearray(key.public_key().encrypt(_plaintext(CHUNK_LEN + 10)))
    ciphertext[position] ^= 0x80
    with pytest.raises(InvalidCiphertextError, match=f"block {position // BLOCK_LEN}"):
        key.decrypt(bytes(ciphertext))


def test_shielding_decrypt_rejects_other_key(key: ShieldingKey) -> None:
    """A ciphertext for another shielding key does not decrypt."""
    other = ShieldingKey.generate()
    with pytest.raises(InvalidCiphertextError):
        key.decrypt(other.public_key().encrypt(b"secret"))


def test_shielding_der_round_trip(key: ShieldingKey) -> None:
    """to_der/from_der keeps the key: the reloaded key decrypts what the original encrypts to."""
    again = ShieldingKey.from_der(key.to_der())
    assert again.public_key() == key.public_key()
    assert again.decrypt(key.public_key().encrypt(b"sealed")) == b"sealed"


@pytest.mark.parametrize("der", [b"", b"\x30\x03\x02\x01\x00", b"not der at all"])
def test_shielding_from_der_rejects_garbage(der: bytes) -> None:
    """Bytes that are not a DER private key are InvalidKeyError."""
    with pytest.raises(InvalidKeyError):
        ShieldingKey.from_der(der)


def test_shielding_from_der_rejects_wrong_size() -> None:
    """A 2048-bit key is not a shielding key."""
    with pytest.raises(InvalidKeyError, match="3072"):
        ShieldingKey.from_der(RSA.generate(2048).export_key("DER", pkcs=8))


def test_shielding_repr_hides_private_key(key: ShieldingKey) -> None:
    """repr shows only the public fingerprint, no private number."""
    text = repr(key)
    assert key.public_key().fingerprint().hex()[:16] in text
    d = RSA.import_key(key.to_der()).d
    assert str(d)[:20] not in text and format(d, "x")[:20] not in text


def test_shielding_json_matches_integritee_serde(key: ShieldingKey) -> None:
    """Compact serde_json of Rsa3072PubKey: n as 384 LE bytes, e as 4 LE bytes."""
    public = key.public_key()
    text = public.to_json()
    assert text.startswith('{"n":[') and " " not in text
    doc = json.loads(text)
    assert list(doc) == ["n", "e"]
    assert len(doc["n"]) == 384 and int.from_bytes(bytes(doc["n"]), "little") == public.n
    assert doc["e"] == [1, 0, 1, 0]  # 65537 little-endian in 4 bytes


def test_shielding_json_round_trip(key: ShieldingKey) -> None:
    """from_json(to_json()) is the same key, and encrypts to the private key."""
    public = ShieldingPublicKey.from_json(key.public_key().to_json())
    assert public == key.public_key()
    assert key.decrypt(public.encrypt(b"round trip")) == b"round trip"
    assert ShieldingPublicKey.from_json(key.public_key().to_json().encode()) == public


def test_shielding_json_accepts_integritee_exponent(pycryptodome_key: RSA.RsaKey) -> None:
    """Integritee's e = 16777217 ([1, 0, 0, 1]) parses; clients read e from the key."""
    n = list(pycryptodome_key.n.to_bytes(384, "little"))
    public = ShieldingPublicKey.from_json(json.dumps({"n": n, "e": [1, 0, 0, 1]}))
    assert public.e == 16777217
    assert len(public.encrypt(b"x")) == BLOCK_LEN


def _valid_doc(key: ShieldingKey) -> dict[str, list[int]]:
    doc: dict[str, list[int]] = json.loads(key.public_key().to_json())
    return doc


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: "not json",
        lambda d: "[1, 2, 3]",
        lambda d: json.dumps({"n": d["n"]}),
        lambda d: json.dumps({**d, "extra": 1}),
        lambda d: json.dumps({"n": d["n"][:-1], "e": d["e"]}),  # 383-byte modulus
        lambda d: json.dumps({"n": [*d["n"], 0], "e": d["e"]}),  # 385 bytes
        lambda d: json.dumps({"n": [*d["n"][:-1], 0], "e": d["e"]}),  # top byte 0: < 3072 bits
        lambda d: json.dumps({"n": [256, *d["n"][1:]], "e": d["e"]}),  # not a byte
        lambda d: json.dumps({"n": [-1, *d["n"][1:]], "e": d["e"]}),
        lambda d: json.dumps({"n": [True, *d["n"][1:]], "e": d["e"]}),  # bool is not a byte
        lambda d: json.dumps({"n": ["1", *d["n"][1:]], "e": d["e"]}),
        lambda d: json.dumps({"n": d["n"], "e": []}),
        lambda d: json.dumps({"n": d["n"], "e": [1, 0, 1, 0, 0]}),  # 5-byte exponent
        lambda d: json.dumps({"n": d["n"], "e": [2, 0, 0, 0]}),  # even exponent
        lambda d: json.dumps({"n": d["n"], "e": [1]}),  # e = 1
        lambda d: json.dumps({"n": d["n"], "e": "AQAB"}),
        lambda d: json.dumps({"n": "0x1234", "e": d["e"]}),
        lambda d: " " * 20000,  # oversized
    ],
)
def test_shielding_json_rejects_malformed(key: ShieldingKey, mutate: object) -> None:
    """Malformed or insane key JSON is InvalidKeyError, never KeyError/TypeError."""
    assert callable(mutate)
    with pytest.raises(InvalidKeyError):
        ShieldingPublicKey.from_json(mutate(_valid_doc(key)))


def test_shielding_public_key_is_immutable(key: ShieldingKey) -> None:
    """A public key cannot be modified after creation."""
    public = key.public_key()
    with pytest.raises(AttributeError):
        public.n = 3
