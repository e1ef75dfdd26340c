"""Keypairs, secret URIs and MultiSignature against Substrate's published vectors and
substrate-interface 1.8.1 (installed: the tool whose AccountIds ours must equal)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from substrateinterface import Keypair as SiKeypair
from substrateinterface import KeypairType

from tocw.primitives.errors import InvalidKeyError, InvalidSignatureError, ScaleDecodeError
from tocw.primitives.keys import (
    DEV_PHRASE,
    MULTI_SIGNATURE_CODEC,
    EcdsaSignature,
    Ed25519Signature,
    Keypair,
    KeyScheme,
    Sr25519Signature,
    verify,
    verify_multi,
)
from tocw.primitives.types import AccountId

SR, ED = KeyScheme.SR25519, KeyScheme.ED25519
SI_TYPE = {SR: KeypairType.SR25519, ED: KeypairType.ED25519}

# Well-known dev accounts (subkey inspect //Alice, //Bob; same in polkadot.js keyring).
ALICE_SR = "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
ALICE_SR_SS58 = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
ALICE_ED = "88dc3417d5058ec4b4503e0c12ea1a0a89be200fe98922423d4334014fa6b0ee"
BOB_SR = "8eaf04151687736326c9fea17e25fc5287613693c912909cb226aa4794f26a48"
BOB_ED = "d17c2d7823ebf260fd138f2d7e27d114c0145d968b5ff5006125f2414fadae69"

# sp-core test vectors (substrate/primitives/core/src/{ed25519,sr25519}.rs tests
# test_vector_should_work, test_vector_by_string_should_work, seed_and_derive_should_work,
# sr_test_vector_should_work); the ed25519 seed and signature are RFC 8032 test 1.
SP_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
SP_ED_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
SP_ED_SIG_EMPTY = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701"
    "cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
SP_ED_HARD0_SEED = "ede3354e133f9c8e337ddd6ee5415ed4b4ffe5fc7d21e933f4930a3730e5b21c"
SP_SR_PUBLIC = "44a996beb1eef7bdcab976ab6d2ca26104834164ecf28fb375600576fcc6eb0f"

OTHER_PHRASE = "legal winner thank year wave sausage worth useful legal winner thank yellow"

# URIs whose sr25519 derivation substrate-interface supports, so both must agree.
SR_URIS = [
    "//Alice",
    "//Bob",
    "//Charlie",
    "//Alice//stash",
    "//Alice/soft",
    "//Alice/1/2",
    "//0",
    "//18446744073709551615",  # u64::MAX: still a number
    "//" + "x" * 40,  # SCALE(str) longer than 32 bytes: blake2_256 chain code
    "/soft//hard/soft",
    f"{OTHER_PHRASE}//polkadot/0",
    OTHER_PHRASE,
]


def test_keypair_alice_sr25519_vector() -> None:
    """//Alice sr25519 is the dev account every Substrate tool knows."""
    alice = Keypair.from_uri("//Alice")
    assert alice.scheme is SR
    assert alice.public_key.hex() == ALICE_SR
    assert alice.account_id == AccountId(bytes.fromhex(ALICE_SR))
    assert alice.ss58_address == ALICE_SR_SS58


def test_keypair_alice_and_bob_ed25519_vectors() -> None:
    """ed25519 hard derivation (Ed25519HDKD) gives the published //Alice and //Bob keys."""
    assert Keypair.from_uri("//Alice", ED).public_key.hex() == ALICE_ED
    assert Keypair.from_uri("//Bob", ED).public_key.hex() == BOB_ED
    assert Keypair.from_uri("//Bob").public_key.hex() == BOB_SR


def test_keypair_sp_core_ed25519_vectors() -> None:
    """A hex-seed URI, RFC 8032's deterministic signature and sp-core's //0 derived seed."""
    pair = Keypair.from_uri("0x" + SP_SEED, ED)
    assert pair.public_key.hex() == SP_ED_PUBLIC
    assert pair.sign(b"").hex() == SP_ED_SIG_EMPTY
    assert Keypair.from_uri(f"0x{SP_SEED}//0", ED).export_secret().hex() == SP_ED_HARD0_SEED


def test_keypair_sp_core_sr25519_seed_vector() -> None:
    """sr25519 from a hex-seed URI equals from_seed and sp-core's published public key."""
    assert Keypair.from_uri("0x" + SP_SEED).public_key.hex() == SP_SR_PUBLIC
    assert Keypair.from_seed(bytes.fromhex(SP_SEED)).public_key.hex() == SP_SR_PUBLIC


@pytest.mark.parametrize("uri", SR_URIS)
def test_keypair_from_uri_matches_substrate_interface_sr25519(uri: str) -> None:
    """Same sr25519 AccountId as substrateinterface.Keypair.create_from_uri."""
    theirs = SiKeypair.create_from_uri(uri, crypto_type=KeypairType.SR25519)
    assert Keypair.from_uri(uri, SR).public_key == theirs.public_key


@pytest.mark.parametrize("scheme", [SR, ED])
def test_keypair_from_mnemonic_matches_substrate_interface(scheme: KeyScheme) -> None:
    """A mnemonic gives the same key as substrate-interface for both schemes."""
    for phrase in (DEV_PHRASE, OTHER_PHRASE):
        theirs = SiKeypair.create_from_mnemonic(phrase, crypto_type=SI_TYPE[scheme])
        assert Keypair.from_mnemonic(phrase, scheme).public_key == theirs.public_key
        assert Keypair.from_uri(phrase, scheme).public_key == theirs.public_key


@pytest.mark.parametrize("scheme", [SR, ED])
def test_keypair_signatures_verify_across_implementations(scheme: KeyScheme) -> None:
    """Our signatures verify in substrate-interface and theirs verify with ours."""
    ours = Keypair.from_mnemonic(OTHER_PHRASE, scheme)
    theirs = SiKeypair.create_from_mnemonic(OTHER_PHRASE, crypto_type=SI_TYPE[scheme])
    message = b"tocw cross-check \x00\xff"
    assert theirs.verify(message, ours.sign(message))
    assert ours.verify(message, theirs.sign(message))
    assert verify(scheme, theirs.public_key, message, theirs.sign(message))
    assert not ours.verify(message + b"!", theirs.sign(message))


def test_keypair_derived_sr25519_signs_like_substrate_interface() -> None:
    """A derived sr25519 key's signature verifies in substrate-interface too."""
    uri = "//Alice//stash/soft"
    ours, theirs = Keypair.from_uri(uri), SiKeypair.create_from_uri(uri)
    assert theirs.verify(b"m", ours.sign(b"m"))
    assert ours.verify(b"m", theirs.sign(b"m"))


def test_keypair_mini_secret_is_substrate_bip39() -> None:
    """mini-secret = PBKDF2-SHA512(entropy, "mnemonic" + password, 2048)[:32] (substrate-bip39),
    checked with hashlib from the BIP39 reference entropy of OTHER_PHRASE (0x7f * 16)."""
    entropy = bytes.fromhex("7f" * 16)
    for password in ("", "password"):
        mini = hashlib.pbkdf2_hmac("sha512", entropy, b"mnemonic" + password.encode(), 2048)[:32]
        for scheme in (SR, ED):
            expected = Keypair.from_seed(mini, scheme)
            assert Keypair.from_mnemonic(OTHER_PHRASE, scheme, password) == expected
            uri = OTHER_PHRASE + (f"///{password}" if password else "")
            assert Keypair.from_uri(uri, scheme) == expected


def test_keypair_password_applies_before_the_path() -> None:
    """`//Alice///password` = the dev phrase salted with "password", then //Alice (sp-core's
    default_phrase_should_be_used); it is a different account from //Alice."""
    with_pw = Keypair.from_uri("//Alice///password")
    # An ed25519 seed is the mini-secret itself, so this exposes the salted mini-secret.
    mini = Keypair.from_mnemonic(DEV_PHRASE, ED, password="password").export_secret()
    assert with_pw == Keypair.from_uri(f"0x{mini.hex()}//Alice")
    assert with_pw != Keypair.from_uri("//Alice")
    assert Keypair.from_uri("///pw", ED) == Keypair.from_mnemonic(DEV_PHRASE, ED, password="pw")


def test_keypair_soft_junction_refused_for_ed25519() -> None:
    """ed25519 has no soft derivation; sp-core fails the same path."""
    with pytest.raises(InvalidKeyError, match="soft"):
        Keypair.from_uri("//Alice/soft", ED)


@pytest.mark.parametrize(
    "uri",
    [
        "not a valid mnemonic at all",
        "0x1234",  # seed of the wrong length
        "0xzz" + "0" * 62,  # not hex
        "//Alice//",  # empty junction
        "//Alice/",  # trailing slash
        f"0x{SP_SEED}///pw",  # password on a raw seed
    ],
)
def test_keypair_from_uri_rejects_bad_input(uri: str) -> None:
    """Malformed URIs raise InvalidKeyError, never another exception."""
    with pytest.raises(InvalidKeyError):
        Keypair.from_uri(uri)


def test_keypair_from_seed_rejects_wrong_length() -> None:
    """A seed is exactly 32 bytes."""
    for scheme in (SR, ED):
        with pytest.raises(InvalidKeyError):
            Keypair.from_seed(b"\x01" * 31, scheme)


def test_keypair_repr_hides_secret() -> None:
    """No secret byte shows up in repr() or str()."""
    pair = Keypair.from_seed(bytes(range(32)), ED)
    secret = pair.export_secret()
    for text in (repr(pair), str(pair)):
        assert secret.hex() not in text
        assert repr(secret) not in text
        assert "_secret" not in text


@pytest.mark.parametrize("scheme", [SR, ED])
def test_keypair_export_secret_round_trips(scheme: KeyScheme) -> None:
    """from_secret(export_secret()) is the same account and still signs."""
    pair = Keypair.from_uri("//Alice//sealed", scheme)
    again = Keypair.from_secret(pair.export_secret(), scheme)
    assert again == pair
    assert pair.verify(b"x", again.sign(b"x"))


def test_keypair_from_secret_rejects_bad_secret() -> None:
    """Wrong-size secrets are InvalidKeyError."""
    with pytest.raises(InvalidKeyError):
        Keypair.from_secret(b"\x00" * 32, SR)
    with pytest.raises(InvalidKeyError):
        Keypair.from_secret(b"\x00" * 64, ED)


def test_keypair_generate_is_random_and_works() -> None:
    """Two generated keys differ and each signs verifiably."""
    for scheme in (SR, ED):
        a, b = Keypair.generate(scheme), Keypair.generate(scheme)
        assert a.public_key != b.public_key
        assert verify(scheme, a.public_key, b"m", a.sign(b"m"))


@pytest.mark.parametrize(
    ("public_key", "signature"),
    [
        (b"", b""),
        (b"\x01" * 31, b"\x02" * 64),
        (b"\x01" * 32, b"\x02" * 63),
        (b"\xff" * 32, b"\x02" * 64),  # not a curve point
        (b"\x00" * 32, b"\x00" * 64),
    ],
)
def test_verify_never_raises_for_malformed_input(public_key: bytes, signature: bytes) -> None:
    """verify() answers False for garbage instead of raising."""
    for scheme in (SR, ED):
        assert verify(scheme, public_key, b"message", signature) is False


@given(st.binary(max_size=80), st.binary(min_size=64, max_size=64))
@settings(max_examples=50, deadline=None)
def test_verify_random_signatures_are_false(message: bytes, signature: bytes) -> None:
    """A random 64-byte string is not a valid signature of Alice (and does not raise)."""
    alice = Keypair.from_uri("//Alice")
    assert verify(SR, alice.public_key, message, signature) is False


def test_multi_signature_codec_layout() -> None:
    """Enum index byte then the raw signature: 0 Ed25519, 1 Sr25519, 2 Ecdsa (65 bytes)."""
    ed, sr = Ed25519Signature(b"\x01" * 64), Sr25519Signature(b"\x02" * 64)
    ec = EcdsaSignature(b"\x03" * 65)
    assert MULTI_SIGNATURE_CODEC.encode(ed) == b"\x00" + b"\x01" * 64
    assert MULTI_SIGNATURE_CODEC.encode(sr) == b"\x01" + b"\x02" * 64
    assert MULTI_SIGNATURE_CODEC.encode(ec) == b"\x02" + b"\x03" * 65
    for value in (ed, sr, ec):
        assert MULTI_SIGNATURE_CODEC.decode(MULTI_SIGNATURE_CODEC.encode(value)) == value


def test_multi_signature_codec_rejects_bad_bytes() -> None:
    """Unknown variant, short payload and trailing bytes are ScaleDecodeError."""
    for data in (b"\x03" + b"\x00" * 64, b"\x01" + b"\x00" * 63, b"\x00" + b"\x00" * 65, b""):
        with pytest.raises(ScaleDecodeError):
            MULTI_SIGNATURE_CODEC.decode(data)


def test_multi_signature_wrong_length_refused() -> None:
    """A signature value of the wrong size cannot be constructed."""
    with pytest.raises(InvalidSignatureError):
        Sr25519Signature(b"\x00" * 65)
    with pytest.raises(InvalidSignatureError):
        EcdsaSignature(b"\x00" * 64)


@pytest.mark.parametrize("scheme", [SR, ED])
def test_verify_multi_accepts_own_and_rejects_others(scheme: KeyScheme) -> None:
    """multi_sign's variant matches the scheme; it verifies only for its signer and message."""
    alice, bob = Keypair.from_uri("//Alice", scheme), Keypair.from_uri("//Bob", scheme)
    sig = alice.multi_sign(b"payload")
    assert isinstance(sig, Sr25519Signature if scheme is SR else Ed25519Signature)
    assert verify_multi(sig, b"payload", alice.account_id)
    assert not verify_multi(sig, b"payload", bob.account_id)
    assert not verify_multi(sig, b"payload!", alice.account_id)


def test_verify_multi_wrong_variant_is_false() -> None:
    """An sr25519 signature wrapped as Ed25519 does not verify (the variant picks the scheme)."""
    alice = Keypair.from_uri("//Alice")
    wrapped = Ed25519Signature(alice.sign(b"m"))
    assert not verify_multi(wrapped, b"m", alice.account_id)


def test_verify_multi_ecdsa_is_unsupported() -> None:
    """ECDSA needs key recovery, which tocw does not do: always False, never raises."""
    assert verify_multi(EcdsaSignature(b"\x01" * 65), b"m", AccountId(b"\x02" * 32)) is False
