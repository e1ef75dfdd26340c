"""Shielding-key provisioning between workers of a shard: the trusted protocol, both roles.

Owns the protocol by which a worker joining a shard (the *requester*) obtains the shard's
shielding key from a worker that already serves it (the *giver*): mutually attested TLS that
terminates inside the enclave, the messages exchanged inside it, the report_data that binds
each side's evidence to the session, and the on-chain registry check each side makes of the
other. Both roles are sans-I/O state machines (`ProvisioningSession`): the host feeds them the
bytes it read from its socket and sends what they return, so it only ever moves TLS
ciphertext; the key exists in clear only inside this package.

Wire, on one TCP connection (the giver listens, default port 3443):

    1. in clear, length-prefixed (u32 LE) frames:
       requester -> giver   Announce{magic "TOCWPROV", version u8, role u8, certificate}
       giver -> requester   Announce{..., its certificate}
    2. TLS 1.3, each side presenting its enclave's self-signed TLS certificate (keys.py) and
       accepting exactly the certificate its peer announced. The announcement carries no
       trust: it only lets Python's ssl, which cannot accept an unknown self-signed client
       certificate any other way, run a mutually authenticated handshake, so each side ends
       the handshake knowing its peer holds the private key of that certificate.
    3. inside TLS, length-prefixed SCALE `ProvisioningMessage`s:
       requester -> giver   Hello{shard, challenge_r}
       giver -> requester   Hello{shard, challenge_g}, Evidence{signer, kind, evidence,
                            Some(shielding-key JSON)} over challenge_r
       requester -> giver   Evidence{signer, kind, evidence, None} over challenge_g
       (each side verifies the other's evidence, then asks its host for a registry proof)
       giver -> requester   ShieldingKey{PKCS#8 DER}      only after both its checks passed
       requester -> giver   Ack                            after sealing the key
       either side          Refusal{reason}                instead of the next message

Provisioning report_data (64 bytes; the attester computes it, the verifier recomputes it):

    [0..32]   the attester's ed25519 signer public key (its parentchain account)
    [32..64]  sha256("tocw/provisioning/v1" ‖ SCALE((role u8, shard H256, challenge H256,
              attester TLS SPKI DER Vec<u8>, verifier TLS SPKI DER Vec<u8>,
              shielding-key JSON Option<String>)))

role is the attester's (0 requester, 1 giver), so evidence made in one role never passes for
the other; challenge is the verifier's fresh 32 random bytes of this session, so recorded
evidence fails in any other session (replay); the two SPKIs are the keys of this TLS session as
the attester sees it, so evidence cannot be relayed into a session with another endpoint; the
giver binds the public shielding key it is about to send, so the requester knows the key it
receives is the one that enclave attested.

Checks, identical in sim and on hardware (only verify_evidence's policy differs): the peer's
evidence verifies with tocw.tee.verify (sim evidence only when this enclave runs sim), with
this enclave's MRENCLAVE and the report_data above; then the peer's signer must be registered
in Teerex.SovereignEnclaves with this MRENCLAVE, and a giver must also be listed in
EnclaveBridge.ShardStatus of the shard (it has confirmed blocks of it, so it holds the shard's
key). The registry is read from a storage proof (state_getReadProof) that the host fetches and
the enclave verifies against a header it trusts (`check_registry_proof`):

- its light client's head (the last imported block, or the checkpoint before any import);
- or, when its light client has a GRANDPA authority set, any header at or above that head with
  a justification of that set (a joiner whose light client still sits at the genesis checks
  the registry at the finalized head this way);
- or, when its light client follows without GRANDPA, any header linked by parent hashes to
  that head through the headers the host sends along. Trust assumption: this is exactly as
  much as such a light client trusts its host for every block it imports (it cannot tell a
  fork from the canonical chain either); a worker on a network with GRANDPA passes the
  authority set to init_parentchain and gets finality proofs instead.

Every refusal is a ProvisioningError on the refusing side, logged, and sent to the peer as a
Refusal (a reason, never a secret) that becomes a ProvisioningRefusedError there. The giver
sends nothing but its public evidence before its checks have passed, and nothing but the key
after them. The TLS plumbing is written by hand on the stdlib ssl module's MemoryBIO because no
maintained library offers attested TLS for Python.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import ssl
import struct as _struct
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tocw.enclave.errors import EnclaveError, EnclaveUsageError
from tocw.enclave.keys import TlsIdentity
from tocw.enclave.light_client import LightClientState
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.grandpa import decode_and_verify_justification
from tocw.primitives.header import Header
from tocw.primitives.metadata import RuntimeMetadata, Variant
from tocw.primitives.scale import (
    H256,
    U8,
    Bytes,
    Codec,
    Enum,
    FixedBytes,
    Mapped,
    Option,
    Str,
    Tuple,
    Unit,
    struct,
)
from tocw.primitives.shielding import ShieldingKey
from tocw.primitives.trie import verify_proof
from tocw.primitives.types import AccountId, BlockHash, BlockNumber, MrEnclave, ShardId
from tocw.tee.base import TEE_KIND_CODEC, Evidence, TeeKind
from tocw.tee.errors import (
    EvidenceError,
    MeasurementMismatchError,
    ReportDataMismatchError,
    TeeError,
)
from tocw.tee.verify import verify_evidence

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAGIC = b"TOCWPROV"
REPORT_DATA_DOMAIN = b"tocw/provisioning/v1"
CHALLENGE_LEN = 32
SIGNER_LEN = 32
FRAME_HEADER_LEN = 4
# Frames hold a certificate, evidence (a DCAP quote with its certificate chain is under 16 KiB)
# or a PKCS#8 RSA-3072 key (~1.8 KiB): anything near this limit is not provisioning traffic.
MAX_FRAME_LEN = 64 * 1024
MAX_CERTIFICATE_LEN = 16 * 1024
MAX_REASON_LEN = 512
_READ_CHUNK = 64 * 1024

TEEREX = "Teerex"
SOVEREIGN_ENCLAVES = "SovereignEnclaves"
ENCLAVE_BRIDGE = "EnclaveBridge"
SHARD_STATUS = "ShardStatus"


# -- errors -------------------------------------------------------------------------------------


class ProvisioningError(EnclaveError):
    """Root of the provisioning errors; the tree:

    ProvisioningError
    ├── ProvisioningProtocolError  a malformed, oversized or unexpected message, another
    │   │                          protocol version or role, or the connection ended early
    │   └── ProvisioningTlsError       the TLS handshake or a TLS record failed (including a
    │                                  peer certificate other than the one announced)
    ├── PeerAttestationError       the peer's evidence does not verify (missing, malformed,
    │   │                          bad signature, sim evidence to a hardware enclave, TCB)
    │   ├── PeerMeasurementError       it measures another MRENCLAVE
    │   └── PeerReportDataError        it binds another session: replayed, another challenge,
    │                                  another TLS key or another shielding key
    ├── ChainProofError            the registry proof does not verify against a header this
    │                              enclave trusts (or it has no light client / metadata yet)
    ├── PeerNotRegisteredError     the peer's signer is no registered enclave with our
    │                              MRENCLAVE, or (giver) no active worker of the shard
    ├── GiverUnavailableError      this enclave cannot give: no shielding key, or it does not
    │                              serve the shard asked for
    ├── ShieldingKeyMismatchError  the key received is not the attested one (or not a key)
    └── ProvisioningRefusedError   the peer refused; its reason is in the message
    """


class ProvisioningProtocolError(ProvisioningError):
    pass


class ProvisioningTlsError(ProvisioningProtocolError):
    pass


class PeerAttestationError(ProvisioningError):
    pass


class PeerMeasurementError(PeerAttestationError):
    pass


class PeerReportDataError(PeerAttestationError):
    pass


class ChainProofError(ProvisioningError):
    pass


class PeerNotRegisteredError(ProvisioningError):
    pass


class GiverUnavailableError(ProvisioningError):
    pass


class ShieldingKeyMismatchError(ProvisioningError):
    pass


class ProvisioningRefusedError(ProvisioningError):
    pass


# -- wire types ---------------------------------------------------------------------------------


class Role(IntEnum):
    REQUESTER = 0
    GIVER = 1

    @property
    def peer(self) -> Role:
        return Role.GIVER if self is Role.REQUESTER else Role.REQUESTER


def _role(index: int) -> Role:
    try:
        return Role(index)
    except ValueError:
        raise ProvisioningProtocolError(f"unknown provisioning role {index}") from None


@dataclass(frozen=True, slots=True)
class Announce:
    """Clear-text opener: who speaks which protocol version, and the certificate it will use."""

    magic: bytes
    version: int
    role: int
    certificate: bytes


@dataclass(frozen=True, slots=True)
class Hello:
    shard: ShardId
    challenge: bytes


@dataclass(frozen=True, slots=True)
class EvidenceMessage:
    """The sender's evidence over the receiver's challenge, and the claims it binds."""

    signer: bytes
    tee_kind: TeeKind
    evidence: bytes
    shielding_key_json: str | None


@dataclass(frozen=True, slots=True)
class ShieldingKeyMessage:
    der: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Ack:
    pass


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str


ProvisioningMessage = Hello | EvidenceMessage | ShieldingKeyMessage | Ack | Refusal

ANNOUNCE_CODEC: Codec[Announce] = struct(
    Announce, magic=FixedBytes(len(MAGIC)), version=U8, role=U8, certificate=Bytes
)
_SHARD: Codec[ShardId] = Mapped(H256, ShardId, bytes)
MESSAGE_CODEC: Codec[ProvisioningMessage] = Enum(
    "ProvisioningMessage",
    {
        0: struct(Hello, shard=_SHARD, challenge=H256),
        1: struct(
            EvidenceMessage,
            signer=H256,
            tee_kind=TEE_KIND_CODEC,
            evidence=Bytes,
            shielding_key_json=Option(Str),
        ),
        2: struct(ShieldingKeyMessage, der=Bytes),
        3: Unit(Ack),
        4: struct(Refusal, reason=Str),
    },
)
_TRANSCRIPT: Codec[tuple[Any, ...]] = Tuple(U8, H256, H256, Bytes, Bytes, Option(Str))


def frame(payload: bytes) -> bytes:
    """u32 LE length ‖ payload."""
    if len(payload) > MAX_FRAME_LEN:
        raise ProvisioningProtocolError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_LEN}")
    return _struct.pack("<I", len(payload)) + payload


class FrameReader:
    """Reassembles length-prefixed frames from a byte stream cut anywhere."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= FRAME_HEADER_LEN:
            (length,) = _struct.unpack_from("<I", self._buffer)
            if length > MAX_FRAME_LEN:
                raise ProvisioningProtocolError(
                    f"peer announced a frame of {length} bytes (limit {MAX_FRAME_LEN})"
                )
            end = FRAME_HEADER_LEN + length
            if len(self._buffer) < end:
                break
            frames.append(bytes(self._buffer[FRAME_HEADER_LEN:end]))
            del self._buffer[:end]
        return frames

    def take_rest(self) -> bytes:
        """The bytes after the last complete frame (handed on to the next layer)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


def provisioning_report_data(
    signer_public_key: bytes,
    role: Role,
    shard: ShardId,
    challenge: bytes,
    attester_spki: bytes,
    verifier_spki: bytes,
    shielding_key_json: str | None,
) -> bytes:
    """The 64 bytes an attester binds in one provisioning session (module docstring)."""
    if len(signer_public_key) != SIGNER_LEN:
        raise EnclaveUsageError(f"a signer public key is {SIGNER_LEN} bytes")
    if len(shard) != 32 or len(challenge) != CHALLENGE_LEN:
        raise EnclaveUsageError("shard and challenge are 32 bytes each")
    transcript = _TRANSCRIPT.encode(
        (
            int(role),
            bytes(shard),
            bytes(challenge),
            bytes(attester_spki),
            bytes(verifier_spki),
            shielding_key_json,
        )
    )
    return bytes(signer_public_key) + hashlib.sha256(REPORT_DATA_DOMAIN + transcript).digest()


def certificate_spki(certificate_der: bytes) -> bytes:
    """DER SubjectPublicKeyInfo of a DER certificate (what the report_data binds)."""
    try:
        cert = x509.load_der_x509_certificate(certificate_der)
        return cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, TypeError) as e:
        raise ProvisioningTlsError(f"the peer's certificate does not parse: {e}") from None


# -- the registry check -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainProofRequest:
    """What the enclave asks its host for once the peer's evidence verified.

    keys: the storage keys to prove (`state_getReadProof(keys, at)`).
    anchor_number / anchor_hash: the light client's head, the header the enclave trusts.
    grandpa: the light client holds a GRANDPA authority set, so a justified header at or
        above the anchor is accepted too; without one, a header above the anchor needs the
        headers linking it to the anchor.
    """

    peer_signer: AccountId
    shard: ShardId
    keys: tuple[bytes, ...]
    anchor_number: BlockNumber
    anchor_hash: BlockHash
    grandpa: bool


@dataclass(frozen=True, slots=True)
class RegistryProof:
    """The host's answer: the proof nodes of `keys` at `header`, and why to trust the header.

    justification: the GRANDPA justification of `header` (light client with GRANDPA).
    ancestry: the headers between the anchor and `header`, oldest first, excluding both
        (light client without GRANDPA); empty when `header` is the anchor's child.
    """

    header: Header
    nodes: tuple[bytes, ...]
    justification: bytes | None = None
    ancestry: tuple[Header, ...] = ()


def registry_keys(md: RuntimeMetadata, peer_signer: AccountId, shard: ShardId) -> tuple[bytes, ...]:
    """Teerex.SovereignEnclaves(peer), EnclaveBridge.ShardStatus(shard): what the check reads."""
    try:
        return (
            md.storage_key(TEEREX, SOVEREIGN_ENCLAVES, bytes(peer_signer)),
            md.storage_key(ENCLAVE_BRIDGE, SHARD_STATUS, bytes(shard)),
        )
    except PrimitivesError as e:
        raise ChainProofError(
            f"the parentchain metadata lacks the registry this check reads: {e}"
        ) from None


def validate_trusted_header(lc: LightClientState, proof: RegistryProof) -> None:
    """Raise ChainProofError unless the light client may trust `proof.header` (docstring)."""
    header = proof.header
    block_hash = header.hash()
    if block_hash == lc.head_hash:
        return
    if header.number < lc.head_number:
        raise ChainProofError(
            f"registry proof at block #{header.number}, older than the light client's head "
            f"#{lc.head_number}: a registration may have been removed since"
        )
    if lc.grandpa is not None:
        if proof.justification is None:
            raise ChainProofError(
                f"registry proof at block #{header.number} carries no GRANDPA justification "
                "and is not the light client's head"
            )
        try:
            decode_and_verify_justification(
                proof.justification,
                block_hash,
                header.number,
                lc.grandpa.authorities,
                lc.grandpa.set_id,
            )
        except PrimitivesError as e:
            raise ChainProofError(
                f"block #{header.number}: GRANDPA justification does not verify against the "
                f"light client's authority set {lc.grandpa.set_id}: {e}"
            ) from None
        return
    parent, number = lc.head_hash, lc.head_number
    for link in (*proof.ancestry, header):
        if link.parent_hash != parent or link.number != number + 1:
            raise ChainProofError(
                f"header #{link.number} does not link to #{number} 0x{bytes(parent).hex()} of "
                "the light client"
            )
        parent, number = link.hash(), link.number


def _field(value: object, name: str) -> object:
    if not isinstance(value, dict) or name not in value:
        raise ChainProofError(f"the registry entry has no field {name!r}")
    return value[name]


def _registered_mrenclave(value: object) -> bytes:
    """mr_enclave of a decoded teerex_primitives::MultiEnclave::Sgx."""
    if not isinstance(value, Variant) or value.name != "Sgx":
        raise ChainProofError(f"unsupported Teerex enclave entry {value!r:.80}")
    mrenclave = _field(value.value, "mr_enclave")
    if not isinstance(mrenclave, bytes):
        raise ChainProofError("the registry entry's mr_enclave is not bytes")
    return mrenclave


def _shard_signers(value: object) -> set[bytes]:
    if value is None:
        return set()
    if not isinstance(value, list):
        raise ChainProofError("EnclaveBridge.ShardStatus is not a list")
    signers = set()
    for status in value:
        signer = _field(status, "signer")
        if not isinstance(signer, bytes):
            raise ChainProofError("a ShardStatus signer is not bytes")
        signers.add(signer)
    return signers


def check_registry_proof(
    request: ChainProofRequest,
    proof: RegistryProof,
    lc: LightClientState,
    md: RuntimeMetadata,
    mrenclave: MrEnclave,
    peer_role: Role,
) -> None:
    """The peer is a registered enclave with our MRENCLAVE (and, as a giver, a worker of the
    shard) in the state of a header this light client trusts; else a typed error."""
    header = proof.header
    try:
        validate_trusted_header(lc, proof)
        values = verify_proof(header.state_root, proof.nodes, list(request.keys))
    except PrimitivesError as e:  # also a header the host built that does not even encode
        raise ChainProofError(f"registry proof at block #{header.number}: {e}") from None
    enclave_key, status_key = request.keys
    peer = f"0x{bytes(request.peer_signer).hex()}"
    raw = values[enclave_key]
    if raw is None:
        raise PeerNotRegisteredError(
            f"{peer} is not a registered enclave (Teerex.SovereignEnclaves at block "
            f"#{header.number})"
        )
    try:
        entry = md.decode_storage(TEEREX, SOVEREIGN_ENCLAVES, raw)
        status = md.decode_storage(ENCLAVE_BRIDGE, SHARD_STATUS, values[status_key])
    except PrimitivesError as e:
        raise ChainProofError(f"registry values do not decode: {e}") from None
    registered = _registered_mrenclave(entry)
    if registered != bytes(mrenclave):
        raise PeerNotRegisteredError(
            f"{peer} is registered with MRENCLAVE 0x{registered.hex()}, "
            f"not ours 0x{bytes(mrenclave).hex()}"
        )
    if peer_role is Role.GIVER and bytes(request.peer_signer) not in _shard_signers(status):
        raise PeerNotRegisteredError(
            f"{peer} is not an active worker of shard 0x{bytes(request.shard).hex()} "
            f"(EnclaveBridge.ShardStatus at block #{header.number})"
        )


# -- TLS ----------------------------------------------------------------------------------------


def _tls_context(
    identity: TlsIdentity, peer_certificate: bytes, server_side: bool
) -> ssl.SSLContext:
    """TLS 1.3 presenting `identity` and accepting exactly `peer_certificate` (pinned).

    The stdlib loads a private key only from a file: it goes through a private temporary
    directory as PKCS#8 PEM encrypted under a one-time random password (as keys.py does for
    the trusted RPC); the files are gone when this returns.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(cadata=peer_certificate)
    except (ssl.SSLError, ValueError) as e:
        raise ProvisioningTlsError(f"the peer's announced certificate is unusable: {e}") from None
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    password = secrets.token_bytes(32)
    key_pem = identity.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    with tempfile.TemporaryDirectory(prefix="tocw-prov-") as tmp:
        cert_path = Path(tmp) / "cert.pem"
        key_path = Path(tmp) / "key.pem"
        cert_path.write_text(identity.certificate_pem())
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        context.load_cert_chain(cert_path, key_path, password=password)
    return context


# -- sessions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What a session may use of its enclave (built by Enclave; never by the host).

    report: the TEE backend's report(); allow_sim: this enclave itself runs sim.
    chain_view: the light client's current state and the parentchain metadata, read under
        the enclave's lock at the moment of the check.
    """

    mrenclave: MrEnclave
    signer_public_key: bytes
    tls: TlsIdentity
    report: Callable[[bytes], Evidence]
    allow_sim: bool
    collateral: bytes | str | None
    now: Callable[[], int]
    serves_shard: Callable[[ShardId], bool]
    shielding_key: Callable[[], ShieldingKey | None]
    import_shielding_key: Callable[[ShieldingKey], None]
    chain_view: Callable[[], tuple[LightClientState | None, RuntimeMetadata | None]]


class ProvisioningSession:
    """One provisioning connection, one role; feed it bytes, send what it returns.

        out = session.start()                       # requester: the Announce; giver: b""
        out = session.receive(bytes_from_peer)      # bytes to send (possibly b"")
        if session.chain_proof_request:             # the peer's evidence verified
            out = session.provide_chain_proof(proof)
        session.done / session.succeeded / session.error / session.result()

    No method raises for anything the peer sends or fails to send: the session ends with
    `error` set (and the bytes returned carry a Refusal to the peer). Only a host that calls
    it out of order gets an EnclaveUsageError.
    """

    def __init__(self, context: SessionContext, role: Role, shard: ShardId | None) -> None:
        self._ctx = context
        self.role = role
        self.shard = shard
        self._challenge = secrets.token_bytes(CHALLENGE_LEN)
        self._clear_reader: FrameReader | None = FrameReader()
        self._frames = FrameReader()
        self._clear_out = bytearray()
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls: ssl.SSLObject | None = None
        self._handshake_done = False
        self._peer_certificate: bytes | None = None
        self._peer_spki: bytes | None = None
        self._own_spki = context.tls.public_key_der()
        self._peer_challenge: bytes | None = None
        self._peer_evidence: EvidenceMessage | None = None
        self._chain_request: ChainProofRequest | None = None
        self._chain_verified = False
        self._held: deque[ProvisioningMessage] = deque()
        self._started = False
        self._key_sent = False
        self.done = False
        self.succeeded = False
        self.error: EnclaveError | None = None

    # -- public surface ---------------------------------------------------------------------

    @property
    def peer_signer(self) -> AccountId | None:
        """The peer's parentchain account as its verified evidence states it (public)."""
        if self._peer_evidence is None:
            return None
        return AccountId(self._peer_evidence.signer)

    @property
    def chain_proof_request(self) -> ChainProofRequest | None:
        """Set while the session waits for the host's registry proof."""
        return None if self.done else self._chain_request

    def start(self) -> bytes:
        """The bytes that open the connection (only the requester speaks first)."""
        if self._started:
            raise EnclaveUsageError("the session was already started")
        self._started = True
        if self.role is Role.REQUESTER:
            self._clear_out += self._announce()
        return self._flush()

    def receive(self, data: bytes) -> bytes:
        """Process bytes from the peer; return the bytes to send it."""
        if not self._started:
            raise EnclaveUsageError("start() the session first")
        if self.done:
            return b""
        try:
            if self._tls is None:
                self._receive_clear(bytes(data))
            else:
                self._incoming.write(bytes(data))
                self._pump()
        except EnclaveError as e:
            self._fail(e)
        return self._flush()

    def provide_chain_proof(self, proof: RegistryProof) -> bytes:
        """Hand in the registry proof asked for by `chain_proof_request`."""
        request = self.chain_proof_request
        if request is None:
            raise EnclaveUsageError("the session is not waiting for a registry proof")
        try:
            lc, md = self._ctx.chain_view()
            if lc is None or md is None:
                raise ChainProofError("the enclave has no light client or parentchain metadata")
            check_registry_proof(request, proof, lc, md, self._ctx.mrenclave, self.role.peer)
            self._chain_request = None
            self._chain_verified = True
            logger.info(
                "provisioning: peer 0x%s is a registered %s (block #%d)",
                bytes(request.peer_signer).hex(),
                self.role.peer.name.lower(),
                proof.header.number,
            )
            if self.role is Role.GIVER:
                self._send_key()
            while self._held and not self.done:
                self._handle(self._held.popleft())
        except EnclaveError as e:
            self._fail(e)
        return self._flush()

    def abort(self, reason: str) -> bytes:
        """The host cannot go on (e.g. it failed to fetch the registry proof): end the
        session, telling the peer why; returns the bytes carrying the refusal."""
        if not self.done:
            self._fail(ProvisioningError(f"the host aborted: {reason}"))
        return self._flush()

    def connection_lost(self) -> None:
        """The host's transport closed or timed out; ends an unfinished session."""
        if not self.done:
            self._fail(
                ProvisioningProtocolError("the connection ended before provisioning completed"),
                tell_peer=False,
            )

    def result(self) -> None:
        """Raise the session's error; EnclaveUsageError if it has not finished."""
        if self.error is not None:
            raise self.error
        if not self.succeeded:
            raise EnclaveUsageError("the provisioning session has not finished")

    # -- clear phase ------------------------------------------------------------------------

    def _announce(self) -> bytes:
        message = Announce(MAGIC, PROTOCOL_VERSION, int(self.role), self._ctx.tls.certificate_der)
        return frame(ANNOUNCE_CODEC.encode(message))

    def _receive_clear(self, data: bytes) -> None:
        assert self._clear_reader is not None
        frames = self._clear_reader.feed(data)
        if not frames:
            return
        if len(frames) > 1:
            raise ProvisioningProtocolError("the peer sent more than one announcement")
        try:
            announce = ANNOUNCE_CODEC.decode(frames[0])
        except PrimitivesError as e:
            raise ProvisioningProtocolError(f"malformed announcement: {e}") from None
        if announce.magic != MAGIC:
            raise ProvisioningProtocolError("the peer does not speak tocw provisioning")
        if announce.version != PROTOCOL_VERSION:
            raise ProvisioningProtocolError(
                f"the peer speaks provisioning version {announce.version}, this enclave "
                f"{PROTOCOL_VERSION}"
            )
        if _role(announce.role) is not self.role.peer:
            raise ProvisioningProtocolError(
                f"the peer announced itself as a {Role(announce.role).name.lower()}, so are we"
            )
        if not announce.certificate or len(announce.certificate) > MAX_CERTIFICATE_LEN:
            raise ProvisioningProtocolError("the peer announced no usable certificate")
        rest = self._clear_reader.take_rest()
        self._clear_reader = None
        self._peer_certificate = announce.certificate
        context = _tls_context(self._ctx.tls, announce.certificate, self.role is Role.GIVER)
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=self.role is Role.GIVER
        )
        if self.role is Role.GIVER:
            self._clear_out += self._announce()
        self._incoming.write(rest)
        self._pump()

    # -- TLS phase --------------------------------------------------------------------------

    def _pump(self) -> None:
        tls = self._tls
        assert tls is not None
        try:
            if not self._handshake_done:
                try:
                    tls.do_handshake()
                except ssl.SSLWantReadError:
                    return
                self._handshake_done = True
                self._on_handshake()
            while not self.done:
                try:
                    chunk = tls.read(_READ_CHUNK)
                except ssl.SSLWantReadError:
                    return
                except ssl.SSLZeroReturnError:
                    raise ProvisioningProtocolError("the peer closed the TLS session") from None
                if not chunk:
                    return
                for payload in self._frames.feed(chunk):
                    try:
                        message = MESSAGE_CODEC.decode(payload)
                    except PrimitivesError as e:
                        raise ProvisioningProtocolError(f"malformed message: {e}") from None
                    self._handle(message)
                    if self.done:
                        return
        except ssl.SSLError as e:
            raise ProvisioningTlsError(f"TLS: {e.reason or e}") from None

    def _on_handshake(self) -> None:
        assert self._tls is not None
        certificate = self._tls.getpeercert(binary_form=True)
        if certificate is None or certificate != self._peer_certificate:
            raise ProvisioningTlsError("the peer's TLS certificate is not the one it announced")
        self._peer_spki = certificate_spki(certificate)
        if self.role is Role.REQUESTER:
            assert self.shard is not None
            self._send(Hello(self.shard, self._challenge))

    def _send(self, message: ProvisioningMessage) -> None:
        assert self._tls is not None
        try:
            self._tls.write(frame(MESSAGE_CODEC.encode(message)))
        except ssl.SSLError as e:
            raise ProvisioningTlsError(f"TLS: {e.reason or e}") from None

    def _flush(self) -> bytes:
        out = bytes(self._clear_out)
        self._clear_out.clear()
        if self._tls is not None:
            out += self._outgoing.read()
        return out

    # -- messages ---------------------------------------------------------------------------

    def _handle(self, message: ProvisioningMessage) -> None:
        if isinstance(message, Refusal):
            raise ProvisioningRefusedError(
                f"the {self.role.peer.name.lower()} refused: {message.reason}"
            )
        if self._chain_request is not None:
            # Nothing the peer says is acted on before its registration is checked.
            self._held.append(message)
            return
        if isinstance(message, Hello):
            self._on_hello(message)
        elif isinstance(message, EvidenceMessage):
            self._on_evidence(message)
        elif isinstance(message, ShieldingKeyMessage) and self.role is Role.REQUESTER:
            self._on_key(message)
        elif isinstance(message, Ack) and self.role is Role.GIVER and self._key_sent:
            self._finish()
        else:
            raise ProvisioningProtocolError(f"unexpected {type(message).__name__} message")

    def _on_hello(self, hello: Hello) -> None:
        if self._peer_challenge is not None:
            raise ProvisioningProtocolError("the peer sent a second Hello")
        if self.role is Role.GIVER:
            if not self._ctx.serves_shard(hello.shard):
                raise GiverUnavailableError(
                    f"this enclave does not serve shard 0x{bytes(hello.shard).hex()}"
                )
            if self._ctx.shielding_key() is None:
                raise GiverUnavailableError("this enclave holds no shielding key to give")
            self.shard = hello.shard
            self._peer_challenge = hello.challenge
            self._send(Hello(hello.shard, self._challenge))
        else:
            if hello.shard != self.shard:
                raise ProvisioningProtocolError("the giver answered for another shard")
            self._peer_challenge = hello.challenge
        self._send(self._own_evidence())

    def _own_evidence(self) -> EvidenceMessage:
        assert self.shard is not None and self._peer_challenge is not None
        assert self._peer_spki is not None
        key_json = None
        if self.role is Role.GIVER:
            key = self._ctx.shielding_key()
            if key is None:
                raise GiverUnavailableError("this enclave holds no shielding key to give")
            key_json = key.public_key().to_json()
        data = provisioning_report_data(
            self._ctx.signer_public_key,
            self.role,
            self.shard,
            self._peer_challenge,
            self._own_spki,
            self._peer_spki,
            key_json,
        )
        try:
            evidence = self._ctx.report(data)
        except TeeError as e:
            raise ProvisioningError(f"this enclave cannot produce evidence: {e}") from None
        return EvidenceMessage(self._ctx.signer_public_key, evidence.kind, evidence.data, key_json)

    def _on_evidence(self, message: EvidenceMessage) -> None:
        if self._peer_challenge is None or self._peer_evidence is not None:
            raise ProvisioningProtocolError("unexpected Evidence message")
        assert self.shard is not None and self._peer_spki is not None
        if self.role is Role.REQUESTER and message.shielding_key_json is None:
            raise PeerAttestationError("the giver's evidence binds no shielding key")
        if self.role is Role.GIVER and message.shielding_key_json is not None:
            raise ProvisioningProtocolError("a requester has no shielding key to bind")
        if message.signer == self._ctx.signer_public_key:
            raise PeerAttestationError("the peer claims this enclave's own signer")
        expected = provisioning_report_data(
            message.signer,
            self.role.peer,
            self.shard,
            self._challenge,
            self._peer_spki,
            self._own_spki,
            message.shielding_key_json,
        )
        try:
            verify_evidence(
                Evidence(message.tee_kind, message.evidence),
                self._ctx.mrenclave,
                self._ctx.now(),
                self._ctx.collateral,
                allow_sim=self._ctx.allow_sim,
                expected_report_data=expected,
            )
        except MeasurementMismatchError as e:
            raise PeerMeasurementError(f"the peer runs other code: {e}") from None
        except ReportDataMismatchError:
            raise PeerReportDataError(
                "the peer's evidence does not bind this session (replayed, or made for another "
                "challenge, TLS key or shielding key)"
            ) from None
        except EvidenceError as e:
            raise PeerAttestationError(f"the peer's evidence does not verify: {e}") from None
        self._peer_evidence = message
        lc, md = self._ctx.chain_view()
        if lc is None or md is None:
            raise ChainProofError(
                "the enclave cannot check the registry: no light client or parentchain metadata "
                "(init_parentchain and set_parentchain_info first)"
            )
        signer = AccountId(message.signer)
        self._chain_request = ChainProofRequest(
            signer,
            self.shard,
            registry_keys(md, signer, self.shard),
            lc.head_number,
            lc.head_hash,
            lc.grandpa is not None,
        )

    def _send_key(self) -> None:
        key = self._ctx.shielding_key()
        if key is None:
            raise GiverUnavailableError("this enclave holds no shielding key to give")
        self._send(ShieldingKeyMessage(key.to_der()))
        self._key_sent = True

    def _on_key(self, message: ShieldingKeyMessage) -> None:
        if not self._chain_verified or self._peer_evidence is None:
            raise ProvisioningProtocolError("the giver sent the key before the checks")
        try:
            key = ShieldingKey.from_der(message.der)
        except PrimitivesError as e:
            raise ShieldingKeyMismatchError(f"the giver sent no valid key: {e}") from None
        if key.public_key().to_json() != self._peer_evidence.shielding_key_json:
            raise ShieldingKeyMismatchError("the key received is not the one the giver attested")
        self._ctx.import_shielding_key(key)
        self._send(Ack())
        self._finish()

    def _finish(self) -> None:
        self.done = True
        self.succeeded = True
        peer = self.peer_signer
        logger.info(
            "provisioning: %s shielding key %s 0x%s for shard 0x%s",
            "gave" if self.role is Role.GIVER else "received",
            "to" if self.role is Role.GIVER else "from",
            bytes(peer or b"").hex(),
            bytes(self.shard or b"").hex(),
        )

    def _fail(self, error: EnclaveError, *, tell_peer: bool = True) -> None:
        self.done = True
        self.error = error
        self._chain_request = None
        self._held.clear()
        peer = self.peer_signer
        logger.warning(
            "provisioning (%s) refused%s: %s",
            self.role.name.lower(),
            f" peer 0x{bytes(peer).hex()}" if peer is not None else "",
            error,
        )
        if not tell_peer or isinstance(error, ProvisioningRefusedError | ProvisioningTlsError):
            return
        if self._tls is None or not self._handshake_done:
            return
        reason = (str(error) or type(error).__name__)[:MAX_REASON_LEN]
        with contextlib.suppress(ssl.SSLError, ProvisioningError):
            self._tls.write(frame(MESSAGE_CODEC.encode(Refusal(reason))))


def new_session(
    context: SessionContext, role: Role, shard: ShardId | None = None
) -> ProvisioningSession:
    """A session for `role` (the requester names the shard; the giver learns it)."""
    if role is Role.REQUESTER and (shard is None or len(shard) != 32):
        raise EnclaveUsageError("a requester session needs the 32-byte shard")
    return ProvisioningSession(context, role, shard)
