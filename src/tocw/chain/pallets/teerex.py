"""pallet_teerex (Integritee sdk-v0.13.0-polkadot-v0.9.42): the registry of attested enclaves.

Names, call indices, events, errors, storage and types follow Integritee's pallet so that tools
written for it can read this chain. Deliberate differences:
- DCAP collateral: instead of `register_quoting_enclave` (3) and `register_tcb_info` (4), which
  store Integritee's parsed extracts, root registers the whole collateral JSON of a platform with
  `register_dcap_collateral` (tocw, call 6; event `DcapCollateralRegistered`, storage
  `SgxDcapCollateral`, keyed by FMSPC). `register_sgx_enclave(.., Dcap)` then verifies the quote
  with the `dcap_qvl` package against that collateral, with the block's timestamp as "now", and
  records the TCB status dcap_qvl reports. `SgxQuotingEnclaveRegistry` and `SgxTcbInfo` do not
  exist here, nor the events SgxTcbInfoRegistered / SgxQuotingEnclaveRegistered (so
  UpdatedSecurityFlags has index 3 here, 5 in Integritee: clients index events by metadata).
  The call is root-only: Integritee lets anyone register Intel-signed extracts, but here
  the collateral's signatures are only checked when a quote is verified against it, so an
  open call would let anyone replace good collateral with stale or bogus one.
- IAS (EPID) attestation is retired by Intel; `Ias` registrations fail with
  RemoteAttestationVerificationFailed.
- Errors: Integritee's first 14 in its order, then `DcapQuoteDecodingError`; the ~40 errors
  Integritee maps one to one from its own verifier (sgx_verify) do not apply to dcap_qvl,
  whose failures are RemoteAttestationVerificationFailed with dcap_qvl's reason in the
  error's text (BlockResult.failure_detail, not on chain).
Everything else (Skip only when `AllowSkippingAttestation`, the enclave signer = report_data
[0..32] for non-proxied DCAP, debug enclaves only with `SgxAllowDebugMode`, unregistering only
after `MaxAttestationRenewalPeriod` without re-attestation) is as Integritee.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum

import dcap_qvl

from tocw.chain.errors import DispatchError
from tocw.chain.pallets import timestamp
from tocw.chain.pallets.framework import (
    CallDef,
    CallEnv,
    ConstantDef,
    ErrorDef,
    EventDef,
    Origin,
    PalletDef,
    StorageMap,
    StorageValue,
    StorageView,
    ensure_root,
    ensure_signed,
)
from tocw.chain.pallets.scaleinfo import (
    BOOL_T,
    BYTES_T,
    U8_T,
    U64_T,
    Composite,
    Field,
    OptionOf,
    VariantDef,
    VariantType,
    array_u8,
    bounded_vec,
    int_enum_type,
)
from tocw.chain.pallets.substrate_types import (
    ACCOUNT_ID_T,
    H256_T,
    MOMENT_T,
    MULTI_SIGNER_T,
    MultiSigner,
    Weight,
)
from tocw.primitives.scale import Enum, Mapped

NAME = "Teerex"
SGX_RA_PROOF_MAX_LEN = 5000
MAX_URL_LEN = 256
MOMENTS_PER_DAY = 86_400_000
MAX_ATTESTATION_RENEWAL_PERIOD = 172_800_000  # 48 h, as integritee-node
_SGX_FLAGS_DEBUG = 0x02

# --- types (teerex_primitives, common_primitives) -----------------------------------------------


class SgxBuildMode(IntEnum):
    Debug = 0
    Production = 1


class SgxStatus(IntEnum):
    Invalid = 0
    Ok = 1
    GroupOutOfDate = 2
    GroupRevoked = 3
    ConfigurationNeeded = 4


@dataclass(frozen=True, slots=True)
class SkipAttestation:
    proxied: bool


@dataclass(frozen=True, slots=True)
class IasAttestation:
    pass


@dataclass(frozen=True, slots=True)
class DcapAttestation:
    proxied: bool


AttestationMethod = SkipAttestation | IasAttestation | DcapAttestation


@dataclass(frozen=True, slots=True)
class SgxEnclave:
    """teerex_primitives::SgxEnclave<Vec<u8>>; stored as MultiEnclave::Sgx."""

    report_data: bytes  # 64 bytes; [0..32] = the enclave's signer account
    mr_enclave: bytes
    mr_signer: bytes
    timestamp: int  # ms since the epoch: when it was attested
    url: bytes | None
    build_mode: SgxBuildMode
    attestation_method: AttestationMethod
    status: SgxStatus

    @property
    def proxied(self) -> bool:
        method = self.attestation_method
        return isinstance(method, SkipAttestation | DcapAttestation) and method.proxied


@dataclass(frozen=True, slots=True)
class OpaqueSigner:
    data: bytes  # BoundedVec<u8, 66>


@dataclass(frozen=True, slots=True)
class KnownSigner:
    signer: MultiSigner


AnySigner = OpaqueSigner | KnownSigner


@dataclass(frozen=True, slots=True)
class EnclaveInstanceAddress:
    fingerprint: bytes
    registrar: bytes
    signer: AnySigner


SGX_BUILD_MODE_T = int_enum_type(["teerex_primitives", "SgxBuildMode"], SgxBuildMode)
SGX_STATUS_T = int_enum_type(["teerex_primitives", "SgxStatus"], SgxStatus)
SGX_ATTESTATION_METHOD_T = VariantType(
    ["teerex_primitives", "SgxAttestationMethod"],
    [
        VariantDef("Skip", 0, (Field("proxied", BOOL_T, "bool"),), cls=SkipAttestation),
        VariantDef("Ias", 1, cls=IasAttestation),
        VariantDef("Dcap", 2, (Field("proxied", BOOL_T, "bool"),), cls=DcapAttestation),
    ],
)
SGX_REPORT_DATA_T = Composite(
    ["teerex_primitives", "SgxReportData"], [Field("d", array_u8(64), "[u8; SGX_REPORT_DATA_SIZE]")]
)
SGX_ENCLAVE_T = Composite(
    ["teerex_primitives", "SgxEnclave"],
    [
        Field("report_data", SGX_REPORT_DATA_T, "SgxReportData"),
        Field("mr_enclave", array_u8(32), "MrEnclave"),
        Field("mr_signer", array_u8(32), "MrSigner"),
        Field("timestamp", U64_T, "u64"),
        Field("url", OptionOf(BYTES_T), "Option<Url>"),
        Field("build_mode", SGX_BUILD_MODE_T, "SgxBuildMode"),
        Field("attestation_method", SGX_ATTESTATION_METHOD_T, "SgxAttestationMethod"),
        Field("status", SGX_STATUS_T, "SgxStatus"),
    ],
    cls=SgxEnclave,
    params=[("Url", BYTES_T)],
)
MULTI_ENCLAVE_T = VariantType(
    ["teerex_primitives", "MultiEnclave"],
    [VariantDef("Sgx", 0, (Field(None, SGX_ENCLAVE_T, "SgxEnclave<Url>"),))],
    params=[("Url", BYTES_T)],
    codec=Enum(
        "MultiEnclave",
        {0: Mapped(SGX_ENCLAVE_T.codec, lambda e: e, lambda e: e, cls=SgxEnclave)},
    ),
)
ANY_SIGNER_T = VariantType(
    ["common_primitives", "AnySigner"],
    [
        VariantDef(
            "Opaque", 0, (Field(None, bounded_vec(U8_T), "OpaqueSigner"),), cls=OpaqueSigner
        ),
        VariantDef("Known", 1, (Field(None, MULTI_SIGNER_T, "MultiSigner"),), cls=KnownSigner),
    ],
)
ENCLAVE_INSTANCE_ADDRESS_T = Composite(
    ["teerex_primitives", "EnclaveInstanceAddress"],
    [
        Field("fingerprint", H256_T, "EnclaveFingerprint"),
        Field("registrar", ACCOUNT_ID_T, "AccountId"),
        Field("signer", ANY_SIGNER_T, "AnySigner"),
    ],
    cls=EnclaveInstanceAddress,
    params=[("AccountId", ACCOUNT_ID_T)],
)
FMSPC_T = array_u8(6)

# --- storage ------------------------------------------------------------------------------------

SOVEREIGN_ENCLAVES: StorageMap[bytes, SgxEnclave] = StorageMap(
    NAME, "SovereignEnclaves", "Blake2_128Concat", ACCOUNT_ID_T, MULTI_ENCLAVE_T
)
PROXIED_ENCLAVES: StorageMap[EnclaveInstanceAddress, SgxEnclave] = StorageMap(
    NAME, "ProxiedEnclaves", "Blake2_128Concat", ENCLAVE_INSTANCE_ADDRESS_T, MULTI_ENCLAVE_T
)
SGX_DCAP_COLLATERAL: StorageMap[bytes, bytes] = StorageMap(
    NAME,
    "SgxDcapCollateral",
    "Blake2_128Concat",
    FMSPC_T,
    BYTES_T,
    docs=(" tocw: DCAP collateral JSON (dcap-qvl QuoteCollateralV3) per platform FMSPC.",),
)
SGX_ALLOW_DEBUG_MODE: StorageValue[bool] = StorageValue(NAME, "SgxAllowDebugMode", BOOL_T, False)
ALLOW_SKIPPING_ATTESTATION: StorageValue[bool] = StorageValue(
    NAME, "AllowSkippingAttestation", BOOL_T, False
)

# --- events -------------------------------------------------------------------------------------

EV_ADDED_SGX_ENCLAVE = EventDef(
    NAME,
    0,
    "AddedSgxEnclave",
    (
        Field("registered_by", ACCOUNT_ID_T, "T::AccountId"),
        Field("worker_url", OptionOf(BYTES_T), "Option<Vec<u8>>"),
        Field("tcb_status", OptionOf(SGX_STATUS_T), "Option<SgxStatus>"),
        Field("attestation_method", SGX_ATTESTATION_METHOD_T, "SgxAttestationMethod"),
    ),
    (" An Intel SGX enclave has been added to the enclave registry",),
)
EV_REMOVED_SOVEREIGN_ENCLAVE = EventDef(
    NAME,
    1,
    "RemovedSovereignEnclave",
    (Field(None, ACCOUNT_ID_T, "T::AccountId"),),
    (" a sovereign enclave has been removed from the enclave registry",),
)
EV_REMOVED_PROXIED_ENCLAVE = EventDef(
    NAME,
    2,
    "RemovedProxiedEnclave",
    (Field(None, ENCLAVE_INSTANCE_ADDRESS_T, "EnclaveInstanceAddress<T::AccountId>"),),
    (" a proxied enclave has been removed from the enclave registry",),
)
EV_UPDATED_SECURITY_FLAGS = EventDef(
    NAME,
    3,
    "UpdatedSecurityFlags",
    (
        Field("allow_skipping_attestation", BOOL_T, "bool"),
        Field("sgx_allow_debug_mode", BOOL_T, "bool"),
    ),
    (" the enclave registry security flags have been updated",),
)
EV_DCAP_COLLATERAL_REGISTERED = EventDef(
    NAME,
    4,
    "DcapCollateralRegistered",
    (Field("fmspc", FMSPC_T, "Fmspc"),),
    (" tocw: DCAP collateral for a platform (FMSPC) has been registered by root",),
)

# --- errors (Integritee's list, in its order) ---------------------------------------------------

_ERROR_NAMES = (
    ("EnclaveSignerDecodeError", "Failed to decode enclave signer."),
    ("SenderIsNotAttestedEnclave", "Sender does not match attested enclave in report."),
    ("RemoteAttestationVerificationFailed", "Verifying RA report failed."),
    ("RemoteAttestationIsTooOld", "IAS remote attestation is too old"),
    ("SgxModeIsNotAllowed", "The enclave cannot attest, because its building mode is not allowed."),
    ("EnclaveIsNotRegistered", "The enclave is not registered."),
    ("EnclaveUrlIsTooLong", "The worker url is too long."),
    ("RaProofIsTooLong", "The Remote Attestation proof is too long."),
    ("EmptyEnclaveRegistry", "No enclave is registered."),
    ("CollateralIsInvalid", "The provided collateral data is invalid"),
    (
        "UnregisterActiveEnclaveIsNotAllowed",
        "It is not allowed to unregister enclaves with recent activity",
    ),
    ("SkippingAttestationIsNotAllowed", "skipping attestation not allowed by configuration"),
    ("MissingTcbInfoForFmspc", "No TCB info could be found onchain for the examinee's fmspc"),
    (
        "TcbInfoIsOutdated",
        "Either the enclave TCB has outdated status or the onchain TCB collateral is outdated",
    ),
    ("DcapQuoteDecodingError", "The DCAP quote cannot be parsed"),
)
ERRORS = tuple(ErrorDef(NAME, i, n, (f" {d}",)) for i, (n, d) in enumerate(_ERROR_NAMES))
_ERR = {e.name: e for e in ERRORS}


def error(name: str, message: str = "") -> DispatchError:
    """The DispatchError of Teerex error `name` (raise it)."""
    return _ERR[name].error(message)


# --- queries used by EnclaveBridge --------------------------------------------------------------


def sovereign_enclave(state: StorageView, account: bytes) -> SgxEnclave:
    enclave = SOVEREIGN_ENCLAVES.get(state, account)
    if enclave is None:
        raise error("EnclaveIsNotRegistered", f"0x{account.hex()} is not a sovereign enclave")
    return enclave


# --- DCAP ---------------------------------------------------------------------------------------


_DCAP_STATUS = {
    "UpToDate": SgxStatus.Ok,
    "SWHardeningNeeded": SgxStatus.Ok,
    "ConfigurationNeeded": SgxStatus.ConfigurationNeeded,
    "ConfigurationAndSWHardeningNeeded": SgxStatus.ConfigurationNeeded,
    "OutOfDate": SgxStatus.GroupOutOfDate,
    "OutOfDateConfigurationNeeded": SgxStatus.GroupOutOfDate,
    "Revoked": SgxStatus.GroupRevoked,
}


@dataclass(frozen=True, slots=True)
class DcapReport:
    report_data: bytes
    mr_enclave: bytes
    mr_signer: bytes
    build_mode: SgxBuildMode
    status: SgxStatus


def _is_fatal(e: BaseException) -> bool:
    return isinstance(e, KeyboardInterrupt | SystemExit | GeneratorExit | MemoryError)


def collateral_fmspc(collateral_json: bytes) -> bytes:
    """The FMSPC that a collateral JSON's TCB info is for; raises CollateralIsInvalid."""
    try:
        text = collateral_json.decode("utf-8")
        dcap_qvl.QuoteCollateralV3.from_json(text)
        tcb_info = json.loads(json.loads(text)["tcb_info"])
        fmspc = bytes.fromhex(tcb_info["fmspc"])
    except BaseException as e:  # dcap_qvl is Rust: a panic is a BaseException
        if _is_fatal(e):
            raise
        raise error("CollateralIsInvalid", f"{type(e).__name__}: {e}") from None
    if len(fmspc) != 6:
        raise error("CollateralIsInvalid", "fmspc must be 6 bytes")
    return fmspc


def verify_dcap_quote(state: StorageView, quote: bytes, now_ms: int) -> DcapReport:
    """Verify an SGX DCAP quote against the registered collateral of its platform."""
    try:
        fmspc = bytes.fromhex(str(dcap_qvl.parse_quote(quote).fmspc()))
    except BaseException as e:
        if _is_fatal(e):
            raise
        raise error("DcapQuoteDecodingError", f"{type(e).__name__}: {e}") from None
    collateral = SGX_DCAP_COLLATERAL.get(state, fmspc)
    if collateral is None:
        raise error("MissingTcbInfoForFmspc", f"no collateral registered for FMSPC {fmspc.hex()}")
    try:
        verified = dcap_qvl.verify(
            quote, dcap_qvl.QuoteCollateralV3.from_json(collateral.decode("utf-8")), now_ms // 1000
        )
        result = json.loads(verified.to_json())
    except BaseException as e:
        if _is_fatal(e):
            raise
        raise error("RemoteAttestationVerificationFailed", f"{type(e).__name__}: {e}") from None
    report = result.get("report", {}).get("SgxEnclave")
    if report is None:
        raise error("RemoteAttestationVerificationFailed", "not an SGX enclave quote")
    attributes = bytes.fromhex(report["attributes"])
    debug = bool(attributes[0] & _SGX_FLAGS_DEBUG)
    return DcapReport(
        report_data=bytes.fromhex(report["report_data"]),
        mr_enclave=bytes.fromhex(report["mr_enclave"]),
        mr_signer=bytes.fromhex(report["mr_signer"]),
        build_mode=SgxBuildMode.Debug if debug else SgxBuildMode.Production,
        status=_DCAP_STATUS.get(str(result.get("status")), SgxStatus.Invalid),
    )


# --- calls --------------------------------------------------------------------------------------


def _instance_signer(enclave: SgxEnclave) -> AnySigner:
    """Integritee's MultiEnclave::instance_signer for a proxied enclave: the report data."""
    return OpaqueSigner(enclave.report_data + bytes(2))


def register_sgx_enclave(
    env: CallEnv,
    origin: Origin,
    proof: bytes,
    worker_url: bytes | None,
    attestation_method: AttestationMethod,
) -> None:
    sender = ensure_signed(origin)
    if len(proof) > SGX_RA_PROOF_MAX_LEN:
        raise error("RaProofIsTooLong", f"{len(proof)} > {SGX_RA_PROOF_MAX_LEN} bytes")
    if worker_url is not None and len(worker_url) > MAX_URL_LEN:
        raise error("EnclaveUrlIsTooLong", f"{len(worker_url)} > {MAX_URL_LEN} bytes")
    now = timestamp.now_ms(env.state)
    if isinstance(attestation_method, SkipAttestation):
        if not ALLOW_SKIPPING_ATTESTATION.value(env.state):
            raise error("SkippingAttestationIsNotAllowed")
        enclave = SgxEnclave(
            report_data=sender + bytes(32),
            mr_enclave=proof[:32] if len(proof) >= 32 else bytes(32),
            mr_signer=bytes(32),
            timestamp=now,
            url=worker_url,
            build_mode=SgxBuildMode.Production,
            attestation_method=attestation_method,
            status=SgxStatus.Invalid,
        )
    elif isinstance(attestation_method, DcapAttestation):
        report = verify_dcap_quote(env.state, proof, now)
        if not attestation_method.proxied and report.report_data[:32] != sender:
            raise error(
                "SenderIsNotAttestedEnclave",
                f"report_data[0..32] is 0x{report.report_data[:32].hex()}",
            )
        enclave = SgxEnclave(
            report_data=report.report_data,
            mr_enclave=report.mr_enclave,
            mr_signer=report.mr_signer,
            timestamp=now,
            url=worker_url,
            build_mode=report.build_mode,
            attestation_method=attestation_method,
            status=report.status,
        )
    else:
        raise error("RemoteAttestationVerificationFailed", "IAS attestation is not supported")
    if enclave.build_mode is SgxBuildMode.Debug and not SGX_ALLOW_DEBUG_MODE.value(env.state):
        raise error("SgxModeIsNotAllowed", "debug enclaves are not allowed on this chain")
    if enclave.proxied:
        address = EnclaveInstanceAddress(enclave.mr_enclave, sender, _instance_signer(enclave))
        PROXIED_ENCLAVES.insert(env.state, address, enclave)
    else:
        SOVEREIGN_ENCLAVES.insert(env.state, sender, enclave)
    env.deposit_event(
        EV_ADDED_SGX_ENCLAVE, sender, worker_url, enclave.status, enclave.attestation_method
    )


def _ensure_renewal_overdue(env: CallEnv, enclave: SgxEnclave) -> None:
    oldest_acceptable = max(0, timestamp.now_ms(env.state) - MAX_ATTESTATION_RENEWAL_PERIOD)
    if enclave.timestamp >= oldest_acceptable:
        raise error(
            "UnregisterActiveEnclaveIsNotAllowed",
            f"attested at {enclave.timestamp}, renewal is due only after {oldest_acceptable}",
        )


def unregister_sovereign_enclave(env: CallEnv, origin: Origin, enclave_signer: bytes) -> None:
    ensure_signed(origin)
    enclave = sovereign_enclave(env.state, enclave_signer)
    _ensure_renewal_overdue(env, enclave)
    SOVEREIGN_ENCLAVES.remove(env.state, enclave_signer)
    env.deposit_event(EV_REMOVED_SOVEREIGN_ENCLAVE, enclave_signer)


def unregister_proxied_enclave(
    env: CallEnv, origin: Origin, address: EnclaveInstanceAddress
) -> None:
    ensure_signed(origin)
    enclave = PROXIED_ENCLAVES.get(env.state, address)
    if enclave is None:
        raise error("EnclaveIsNotRegistered", "no proxied enclave at this address")
    _ensure_renewal_overdue(env, enclave)
    PROXIED_ENCLAVES.remove(env.state, address)
    env.deposit_event(EV_REMOVED_PROXIED_ENCLAVE, address)


def set_security_flags(
    env: CallEnv, origin: Origin, allow_skipping_attestation: bool, sgx_allow_debug_mode: bool
) -> None:
    ensure_root(origin)
    ALLOW_SKIPPING_ATTESTATION.put(env.state, allow_skipping_attestation)
    SGX_ALLOW_DEBUG_MODE.put(env.state, sgx_allow_debug_mode)
    env.deposit_event(EV_UPDATED_SECURITY_FLAGS, allow_skipping_attestation, sgx_allow_debug_mode)


def register_dcap_collateral(env: CallEnv, origin: Origin, collateral: bytes) -> None:
    ensure_root(origin)
    fmspc = collateral_fmspc(collateral)
    SGX_DCAP_COLLATERAL.insert(env.state, fmspc, collateral)
    env.deposit_event(EV_DCAP_COLLATERAL_REGISTERED, fmspc)


PALLET = PalletDef(
    NAME,
    calls=(
        CallDef(
            0,
            "register_sgx_enclave",
            (
                Field("proof", BYTES_T, "Vec<u8>"),
                Field("worker_url", OptionOf(BYTES_T), "Option<Vec<u8>>"),
                Field("attestation_method", SGX_ATTESTATION_METHOD_T, "SgxAttestationMethod"),
            ),
            register_sgx_enclave,
            Weight(1_969_500_000, 3_000),
        ),
        CallDef(
            1,
            "unregister_sovereign_enclave",
            (Field("enclave_signer", ACCOUNT_ID_T, "T::AccountId"),),
            unregister_sovereign_enclave,
            Weight(50_000_000, 3_000),
        ),
        CallDef(
            2,
            "unregister_proxied_enclave",
            (
                Field(
                    "address",
                    ENCLAVE_INSTANCE_ADDRESS_T,
                    "EnclaveInstanceAddress<T::AccountId>",
                ),
            ),
            unregister_proxied_enclave,
            Weight(50_000_000, 3_000),
        ),
        CallDef(
            5,
            "set_security_flags",
            (
                Field("allow_skipping_attestation", BOOL_T, "bool"),
                Field("sgx_allow_debug_mode", BOOL_T, "bool"),
            ),
            set_security_flags,
            Weight(20_000_000),
        ),
        CallDef(
            6,
            "register_dcap_collateral",
            (Field("collateral", BYTES_T, "Vec<u8>"),),
            register_dcap_collateral,
            Weight(100_000_000, 20_000),
            docs=(" tocw: root registers dcap-qvl collateral JSON for the FMSPC it covers.",),
        ),
    ),
    events=(
        EV_ADDED_SGX_ENCLAVE,
        EV_REMOVED_SOVEREIGN_ENCLAVE,
        EV_REMOVED_PROXIED_ENCLAVE,
        EV_UPDATED_SECURITY_FLAGS,
        EV_DCAP_COLLATERAL_REGISTERED,
    ),
    errors=ERRORS,
    storage=(
        SOVEREIGN_ENCLAVES,
        PROXIED_ENCLAVES,
        SGX_DCAP_COLLATERAL,
        SGX_ALLOW_DEBUG_MODE,
        ALLOW_SKIPPING_ATTESTATION,
    ),
    constants=(
        ConstantDef("MomentsPerDay", MOMENT_T, lambda _: MOMENTS_PER_DAY),
        ConstantDef(
            "MaxAttestationRenewalPeriod",
            MOMENT_T,
            lambda _: MAX_ATTESTATION_RENEWAL_PERIOD,
            (" If a worker does not re-register within this period, anyone can unregister it.",),
        ),
    ),
    crate="pallet_teerex",
)
