"""The enclave's keys: generated inside, sealed at rest, never handed out in clear.

Owns the four keys of ARCHITECTURE.md "Keys" and their life cycle:

- shielding key: RSA-3072 (tocw.primitives.shielding), what clients encrypt to;
- signer: ed25519, the enclave's parentchain account (report_data[0..32]);
- state key: 32 random bytes, the root of the state database encryption (state_store.py);
- TLS identity: an ECDSA P-256 key and a self-signed X.509 certificate for the trusted RPC.

Each is sealed in its own blob (sealing.py) and stored through the OCALL interface. A sealed
"key manifest" lists the keys that were ever created, so a blob that vanished is reported as
missing instead of being silently replaced by a fresh key (which would orphan the shard's
ciphertexts, the state database or the on-chain registration). A blob that exists but fails to
unseal or parse is always an error. Keys not yet listed (a first start, or one interrupted
midway) are generated; a key whose blob already exists is loaded, never regenerated.

A worker joining an existing shard must not generate a shielding key: the shard already has
one, which its other workers provision to it (provisioning.py). `load_or_create_keys(...,
create_shielding_key=False)` therefore leaves the shielding key absent (`EnclaveKeys.shielding
is None`) unless one was sealed before, and `store_shielding_key` seals the provisioned key
once; it never replaces a key the enclave already holds. A worker host that opens its enclave
that way before it knows whether its shard exists calls `create_shielding_key` once it knows
the shard is new.

The TLS private key leaves this module only inside an ssl.SSLContext (see
`TlsIdentity.server_context`), so the host gets a TLS endpoint, not the key.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tocw.enclave.errors import CorruptKeyError, KeyStoreError, MissingSealedKeyError
from tocw.enclave.ocall import OCallApi
from tocw.enclave.sealing import Sealer
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.keys import Keypair, KeyScheme
from tocw.primitives.scale import Bytes, Str, Tuple, Vec
from tocw.primitives.shielding import ShieldingKey

T = TypeVar("T")

SHIELDING_KEY_ID = "shielding-key"
SIGNER_KEY_ID = "signer-key"
STATE_KEY_ID = "state-key"
TLS_IDENTITY_ID = "tls-identity"
MANIFEST_ID = "key-manifest"
KEY_IDS = (SHIELDING_KEY_ID, SIGNER_KEY_ID, STATE_KEY_ID, TLS_IDENTITY_ID)

STATE_KEY_LEN = 32
TLS_CERT_VALIDITY = datetime.timedelta(days=3650)
TLS_CERT_BACKDATE = datetime.timedelta(days=1)  # tolerate peers with a slow clock
TLS_COMMON_NAME = "tocw enclave"

_MANIFEST_CODEC = Vec(Str)
_TLS_CODEC = Tuple(Bytes, Bytes)


class NoShieldingKeyError(KeyStoreError):
    """The enclave holds no shielding key yet: it joins a shard and waits for provisioning."""


class ShieldingKeyConflictError(KeyStoreError):
    """A second shielding key (provisioned or generated) would replace the one the enclave
    already holds."""


@dataclass(frozen=True, slots=True)
class TlsIdentity:
    """The trusted RPC's TLS key and its self-signed certificate (DER)."""

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate_der: bytes

    @staticmethod
    def generate(hostnames: tuple[str, ...] = ("localhost",)) -> TlsIdentity:
        """A fresh P-256 key and a self-signed certificate for `hostnames` and loopback.

        Clients do not rely on the certificate's names or issuer: they pin its public key
        through the attestation (attestation.py), which is what makes self-signing sound.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_COMMON_NAME)])
        now = datetime.datetime.now(datetime.UTC)
        alt_names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
        alt_names += [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - TLS_CERT_BACKDATE)
            .not_valid_after(now + TLS_CERT_VALIDITY)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return TlsIdentity(key, cert.public_bytes(serialization.Encoding.DER))

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.certificate_der)

    def public_key_der(self) -> bytes:
        """DER SubjectPublicKeyInfo of the certificate's key (bound by the attestation)."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context holding this identity, for the host's wss transport.

        The stdlib can load a key only from a file, so the key goes through a private temporary
        directory as PKCS#8 PEM encrypted under a one-time random password that never leaves
        this function; the files are removed before returning.
        """
        password = secrets.token_bytes(32)
        key_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        with tempfile.TemporaryDirectory(prefix="tocw-tls-") as tmp:
            cert_path = Path(tmp) / "cert.pem"
            key_path = Path(tmp) / "key.pem"
            cert_path.write_text(self.certificate_pem())
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key_pem)
            context.load_cert_chain(cert_path, key_path, password=password)
        return context

    def to_bytes(self) -> bytes:
        """Secret: PKCS#8 DER of the key and the certificate, for sealing only."""
        key_der = self.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return _TLS_CODEC.encode((key_der, self.certificate_der))

    @staticmethod
    def from_bytes(data: bytes) -> TlsIdentity:
        key_der, cert_der = _TLS_CODEC.decode(data)
        key = serialization.load_der_private_key(key_der, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("sealed TLS key is not an EC key")
        cert = x509.load_der_x509_certificate(cert_der)
        if cert.public_key() != key.public_key():
            raise ValueError("sealed TLS certificate does not match its key")
        return TlsIdentity(key, cert_der)


@dataclass(frozen=True, slots=True)
class EnclaveKeys:
    """All keys of one enclave instance. repr() shows no secret.

    shielding: None while a joining enclave waits for the shard's key (provisioning.py).
    """

    shielding: ShieldingKey | None
    signer: Keypair
    state_key: bytes = field(repr=False)
    tls: TlsIdentity


def _load(
    ocall: OCallApi,
    sealer: Sealer,
    key_id: str,
    known: set[str],
    from_bytes: Callable[[bytes], T],
) -> T | None:
    """The sealed key `key_id`, or None if it was never created (a vanished one raises)."""
    blob = ocall.load_sealed(key_id)
    if blob is None:
        if key_id in known:
            raise MissingSealedKeyError(
                f"sealed key {key_id!r} was created before but the host no longer has it; "
                "refusing to generate a replacement (restore the data dir's sealed blobs)"
            )
        return None
    plaintext = sealer.unseal(key_id, blob)  # SealingError propagates: never regenerate
    try:
        return from_bytes(plaintext)
    except (PrimitivesError, ValueError, TypeError) as err:
        raise CorruptKeyError(f"sealed key {key_id!r} does not hold a valid key: {err}") from None


def _load_or_create(
    ocall: OCallApi,
    sealer: Sealer,
    key_id: str,
    known: set[str],
    generate: Callable[[], T],
    to_bytes: Callable[[T], bytes],
    from_bytes: Callable[[bytes], T],
) -> T:
    value = _load(ocall, sealer, key_id, known, from_bytes)
    if value is None:
        value = generate()
        ocall.store_sealed(key_id, sealer.seal(key_id, to_bytes(value)))
    return value


def _state_key_from_bytes(data: bytes) -> bytes:
    if len(data) != STATE_KEY_LEN:
        raise ValueError(f"state key must be {STATE_KEY_LEN} bytes, got {len(data)}")
    return data


def _load_manifest(ocall: OCallApi, sealer: Sealer) -> set[str]:
    manifest_blob = ocall.load_sealed(MANIFEST_ID)
    if manifest_blob is None:
        return set()
    try:
        return set(_MANIFEST_CODEC.decode(sealer.unseal(MANIFEST_ID, manifest_blob)))
    except PrimitivesError as err:
        raise CorruptKeyError(f"sealed key manifest is malformed: {err}") from None


def _store_manifest(ocall: OCallApi, sealer: Sealer, key_ids: set[str]) -> None:
    ocall.store_sealed(
        MANIFEST_ID, sealer.seal(MANIFEST_ID, _MANIFEST_CODEC.encode(sorted(key_ids)))
    )


def load_or_create_keys(
    ocall: OCallApi, sealer: Sealer, *, create_shielding_key: bool = True
) -> EnclaveKeys:
    """The enclave's keys: unsealed if they exist, generated (and sealed) if never created.

    create_shielding_key=False: a joining worker's mode; a shielding key sealed before is
    loaded, but none is generated (it comes from the shard's other workers).
    """
    known = _load_manifest(ocall, sealer)
    shielding: ShieldingKey | None
    if create_shielding_key:
        shielding = _load_or_create(
            ocall,
            sealer,
            SHIELDING_KEY_ID,
            known,
            ShieldingKey.generate,
            lambda k: k.to_der(),
            ShieldingKey.from_der,
        )
    else:
        shielding = _load(ocall, sealer, SHIELDING_KEY_ID, known, ShieldingKey.from_der)
    signer = _load_or_create(
        ocall,
        sealer,
        SIGNER_KEY_ID,
        known,
        lambda: Keypair.generate(KeyScheme.ED25519),
        lambda k: k.export_secret(),
        lambda b: Keypair.from_seed(b, KeyScheme.ED25519),
    )
    state_key = _load_or_create(
        ocall,
        sealer,
        STATE_KEY_ID,
        known,
        lambda: secrets.token_bytes(STATE_KEY_LEN),
        lambda k: k,
        _state_key_from_bytes,
    )
    tls = _load_or_create(
        ocall,
        sealer,
        TLS_IDENTITY_ID,
        known,
        TlsIdentity.generate,
        TlsIdentity.to_bytes,
        TlsIdentity.from_bytes,
    )
    created = set(KEY_IDS) if shielding is not None else set(KEY_IDS) - {SHIELDING_KEY_ID}
    if not known.issuperset(created):
        _store_manifest(ocall, sealer, known | created)
    return EnclaveKeys(shielding, signer, state_key, tls)


def create_shielding_key(ocall: OCallApi, sealer: Sealer) -> ShieldingKey:
    """Generate a shielding key and seal it (the first worker of a new shard, whose enclave was
    opened with create_shielding_key=False until the host knew the shard is new). Refuses when
    a key was ever created or provisioned here: a shard never gets a second key."""
    known = _load_manifest(ocall, sealer)
    if _load(ocall, sealer, SHIELDING_KEY_ID, known, ShieldingKey.from_der) is not None:
        raise ShieldingKeyConflictError("this enclave already holds a shielding key")
    key = ShieldingKey.generate()
    store_shielding_key(ocall, sealer, key)
    return key


def store_shielding_key(ocall: OCallApi, sealer: Sealer, key: ShieldingKey) -> None:
    """Seal a provisioned shielding key, once: the blob first, then the manifest entry.

    A crash between the two leaves a blob the next start loads (a blob that exists is always
    loaded), so the key is never lost once its blob is written. An enclave that already holds
    a shielding key keeps it: the same key again is a no-op, another key is refused.
    """
    known = _load_manifest(ocall, sealer)
    existing = _load(ocall, sealer, SHIELDING_KEY_ID, known, ShieldingKey.from_der)
    if existing is not None:
        if existing.to_der() != key.to_der():
            raise ShieldingKeyConflictError(
                "this enclave already holds another shielding key; refusing to replace it"
            )
    else:
        ocall.store_sealed(SHIELDING_KEY_ID, sealer.seal(SHIELDING_KEY_ID, key.to_der()))
    if SHIELDING_KEY_ID not in known:
        _store_manifest(ocall, sealer, known | {SHIELDING_KEY_ID})
