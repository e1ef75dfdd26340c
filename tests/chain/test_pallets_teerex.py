"""Teerex: enclave registration (Skip and DCAP with the real SGX quote of shared/testdata),
security flags, collateral, unregistration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tocw.chain.pallets import teerex
from tocw.chain.pallets.framework import describe_encoded_error
from tocw.chain.pallets.substrate_types import AddressId
from tocw.chain.pallets.teerex import (
    DcapAttestation,
    EnclaveInstanceAddress,
    IasAttestation,
    OpaqueSigner,
    SgxBuildMode,
    SgxEnclave,
    SgxStatus,
    SkipAttestation,
)
from tocw.chain.runtime import PALLETS, BlockResult, LocalChain, Runtime, RuntimeConfig
from tocw.primitives.keys import Keypair, KeyScheme

RUNTIME = Runtime()
ALICE = Keypair.from_uri("//Alice", KeyScheme.SR25519)
BOB = Keypair.from_uri("//Bob", KeyScheme.SR25519)
MRENCLAVE = bytes(range(32))
URL = b"wss://127.0.0.1:2000"

DCAP = Path("/work/shared/testdata/dcap")
EXPECTED = json.loads((DCAP / "EXPECTED.json").read_text())["sgx_quote"]
QUOTE = (DCAP / "sgx_quote").read_bytes()
COLLATERAL = (DCAP / "sgx_quote_collateral.json").read_bytes()
PINNED_MS = EXPECTED["verify_at_unix"] * 1000
QUOTE_SIGNER = bytes.fromhex(EXPECTED["report_data"])[:32]  # "Hello, world!" + zeros


def submit(c: LocalChain, who: Keypair, call: bytes) -> BlockResult:
    xt = c.sign(who, call)
    result = c.produce(xt)
    assert result.extrinsics[1:] == [xt], (result.dropped, result.deferred)
    return result


def events(result: BlockResult) -> list[tuple[str, tuple[Any, ...]]]:
    return [(str(e), e.args) for e in result.extrinsic_events(1)]


def sudo(c: LocalChain, pallet: str, name: str, *args: Any) -> bytes:
    return c.call("Sudo", "sudo", c.runtime.decode_call(c.call(pallet, name, *args)))


def inner_error(result: BlockResult, event: str) -> str | None:
    (args,) = [a for n, a in events(result) if n == event]
    return None if args[0] is None else describe_encoded_error(args[0], PALLETS)


def register(method: Any, proof: bytes = MRENCLAVE, url: bytes | None = URL) -> tuple[Any, ...]:
    return ("Teerex", "register_sgx_enclave", proof, url, method)


def dcap_chain() -> LocalChain:
    """A chain at the quote's pinned time with the quote's collateral registered by root."""
    c = LocalChain(RUNTIME, first_block_ms=PINNED_MS)
    result = submit(c, ALICE, sudo(c, "Teerex", "register_dcap_collateral", COLLATERAL))
    assert inner_error(result, "Sudo.Sudid") is None
    return c


def test_register_skip_stores_a_sovereign_enclave() -> None:
    """Skip{proxied: false}: mrenclave from the proof, signer in report_data, block time."""
    c = LocalChain(RUNTIME)
    result = submit(c, ALICE, c.call(*register(SkipAttestation(False))))
    assert result.dispatch_error(1) is None
    expected = SgxEnclave(
        report_data=ALICE.public_key + bytes(32),
        mr_enclave=MRENCLAVE,
        mr_signer=bytes(32),
        timestamp=result.timestamp_ms,
        url=URL,
        build_mode=SgxBuildMode.Production,
        attestation_method=SkipAttestation(False),
        status=SgxStatus.Invalid,
    )
    assert teerex.SOVEREIGN_ENCLAVES.get(c.state, ALICE.public_key) == expected
    assert (
        "Teerex.AddedSgxEnclave",
        (ALICE.public_key, URL, SgxStatus.Invalid, SkipAttestation(False)),
    ) in events(result)


def test_register_skip_short_proof_gives_zero_mrenclave() -> None:
    """As Integritee: a proof that is not 32 bytes long registers the default mrenclave."""
    c = LocalChain(RUNTIME)
    submit(c, ALICE, c.call(*register(SkipAttestation(False), proof=b"\x01", url=None)))
    enclave = teerex.SOVEREIGN_ENCLAVES.get(c.state, ALICE.public_key)
    assert enclave is not None and enclave.mr_enclave == bytes(32) and enclave.url is None


def test_register_skip_refused_when_the_flag_is_off() -> None:
    """Without AllowSkippingAttestation (genesis or set_security_flags) Skip is refused."""
    c = LocalChain(Runtime(RuntimeConfig(allow_skipping_attestation=False)))
    result = submit(c, ALICE, c.call(*register(SkipAttestation(False))))
    assert result.dispatch_error(1) == "Teerex.SkippingAttestationIsNotAllowed"
    assert teerex.SOVEREIGN_ENCLAVES.get(c.state, ALICE.public_key) is None
    c = LocalChain(RUNTIME)
    result = submit(c, ALICE, sudo(c, "Teerex", "set_security_flags", False, False))
    assert ("Teerex.UpdatedSecurityFlags", (False, False)) in events(result)
    result = submit(c, BOB, c.call(*register(SkipAttestation(False))))
    assert result.dispatch_error(1) == "Teerex.SkippingAttestationIsNotAllowed"


def test_set_security_flags_requires_root() -> None:
    """A signed set_security_flags is BadOrigin."""
    c = LocalChain(RUNTIME)
    result = submit(c, BOB, c.call("Teerex", "set_security_flags", True, True))
    assert result.dispatch_error(1) == "BadOrigin"


def test_register_skip_proxied_goes_to_proxied_enclaves() -> None:
    """Skip{proxied: true} registers under EnclaveInstanceAddress, not as sovereign."""
    c = LocalChain(RUNTIME)
    submit(c, ALICE, c.call(*register(SkipAttestation(True))))
    assert teerex.SOVEREIGN_ENCLAVES.get(c.state, ALICE.public_key) is None
    address = EnclaveInstanceAddress(
        MRENCLAVE, ALICE.public_key, OpaqueSigner(ALICE.public_key + bytes(34))
    )
    enclave = teerex.PROXIED_ENCLAVES.get(c.state, address)
    assert enclave is not None and enclave.attestation_method == SkipAttestation(True)


@pytest.mark.parametrize(
    ("proof", "url", "error"),
    [
        (MRENCLAVE, b"x" * 257, "Teerex.EnclaveUrlIsTooLong"),
        (b"\x00" * 5001, URL, "Teerex.RaProofIsTooLong"),
    ],
)
def test_register_rejects_oversized_inputs(proof: bytes, url: bytes, error: str) -> None:
    """Integritee's limits: url <= 256 bytes, proof <= 5000 bytes."""
    c = LocalChain(RUNTIME)
    result = submit(c, ALICE, c.call(*register(SkipAttestation(False), proof, url)))
    assert result.dispatch_error(1) == error


def test_register_ias_is_not_supported() -> None:
    """IAS (EPID) attestation is retired: a clear verification failure."""
    c = LocalChain(RUNTIME)
    result = submit(c, ALICE, c.call(*register(IasAttestation())))
    assert result.dispatch_error(1) == "Teerex.RemoteAttestationVerificationFailed"


def test_register_dcap_collateral_is_root_only_and_validated() -> None:
    """Root registers collateral per FMSPC; signed callers and garbage are refused."""
    c = LocalChain(RUNTIME)
    result = submit(c, ALICE, c.call("Teerex", "register_dcap_collateral", COLLATERAL))
    assert result.dispatch_error(1) == "BadOrigin"
    result = submit(c, ALICE, sudo(c, "Teerex", "register_dcap_collateral", b"{not json"))
    assert inner_error(result, "Sudo.Sudid") == "Teerex.CollateralIsInvalid"
    result = submit(c, ALICE, sudo(c, "Teerex", "register_dcap_collateral", COLLATERAL))
    fmspc = bytes.fromhex("00A067110000")
    assert ("Teerex.DcapCollateralRegistered", (fmspc,)) in events(result)
    assert teerex.SGX_DCAP_COLLATERAL.get(c.state, fmspc) == COLLATERAL


def test_register_dcap_without_collateral_is_missing_tcb_info() -> None:
    """A quote whose platform has no registered collateral: MissingTcbInfoForFmspc."""
    c = LocalChain(RUNTIME, first_block_ms=PINNED_MS)
    result = submit(c, ALICE, c.call(*register(DcapAttestation(False), QUOTE)))
    assert result.dispatch_error(1) == "Teerex.MissingTcbInfoForFmspc"


def test_register_dcap_sender_must_be_the_attested_signer() -> None:
    """The real quote verifies, but its report_data[0..32] is not //Alice."""
    c = dcap_chain()
    result = submit(c, ALICE, c.call(*register(DcapAttestation(False), QUOTE)))
    assert result.dispatch_error(1) == "Teerex.SenderIsNotAttestedEnclave"


def test_register_dcap_accepts_the_attested_enclave() -> None:
    """Sent as the report_data account (sudo_as), the real quote registers the enclave with
    the quote's measurements and dcap-qvl's TCB status."""
    c = dcap_chain()
    call = c.runtime.decode_call(c.call(*register(DcapAttestation(False), QUOTE)))
    result = submit(c, ALICE, c.call("Sudo", "sudo_as", AddressId(QUOTE_SIGNER), call))
    assert inner_error(result, "Sudo.SudoAsDone") is None
    enclave = teerex.SOVEREIGN_ENCLAVES.get(c.state, QUOTE_SIGNER)
    assert enclave is not None
    assert enclave.mr_enclave.hex() == EXPECTED["mr_enclave"]
    assert enclave.mr_signer.hex() == EXPECTED["mr_signer"]
    assert enclave.report_data.hex() == EXPECTED["report_data"]
    assert enclave.status is SgxStatus.ConfigurationNeeded  # ConfigurationAndSWHardeningNeeded
    assert enclave.build_mode is SgxBuildMode.Production
    assert enclave.attestation_method == DcapAttestation(False)
    assert enclave.timestamp == result.timestamp_ms


def test_register_dcap_fails_once_the_collateral_expired() -> None:
    """The block time is "now": a year later the same quote and collateral do not verify."""
    c = dcap_chain()
    c.next_ms = PINNED_MS + 365 * 86_400_000
    call = c.runtime.decode_call(c.call(*register(DcapAttestation(False), QUOTE)))
    result = submit(c, ALICE, c.call("Sudo", "sudo_as", AddressId(QUOTE_SIGNER), call))
    assert inner_error(result, "Sudo.SudoAsDone") == "Teerex.RemoteAttestationVerificationFailed"


def test_register_dcap_tampered_quote_fails() -> None:
    """Flipping a byte of the report body breaks the quote's signature."""
    c = dcap_chain()
    tampered = bytearray(QUOTE)
    tampered[48 + 64] ^= 0x01  # inside the enclave report (mr_enclave)
    result = submit(c, ALICE, c.call(*register(DcapAttestation(False), bytes(tampered))))
    assert result.dispatch_error(1) == "Teerex.RemoteAttestationVerificationFailed"
    detail = result.failure_detail(1)
    assert detail is not None and "signature is invalid" in detail  # dcap-qvl's reason


def test_register_dcap_garbage_quote_does_not_decode() -> None:
    """Bytes that are no quote: DcapQuoteDecodingError."""
    c = dcap_chain()
    result = submit(c, ALICE, c.call(*register(DcapAttestation(False), b"not a quote")))
    assert result.dispatch_error(1) == "Teerex.DcapQuoteDecodingError"


def test_unregister_sovereign_enclave_only_after_the_renewal_period() -> None:
    """Anyone may unregister an enclave that has not re-attested for 48 h, not before."""
    c = LocalChain(RUNTIME)
    submit(c, ALICE, c.call(*register(SkipAttestation(False))))
    attested = c.next_ms - 6_000
    unregister = c.call("Teerex", "unregister_sovereign_enclave", ALICE.public_key)
    result = submit(c, BOB, unregister)
    assert result.dispatch_error(1) == "Teerex.UnregisterActiveEnclaveIsNotAllowed"
    c.next_ms = attested + teerex.MAX_ATTESTATION_RENEWAL_PERIOD + 1
    result = submit(c, BOB, unregister)
    assert ("Teerex.RemovedSovereignEnclave", (ALICE.public_key,)) in events(result)
    assert teerex.SOVEREIGN_ENCLAVES.get(c.state, ALICE.public_key) is None
    result = submit(c, BOB, unregister)
    assert result.dispatch_error(1) == "Teerex.EnclaveIsNotRegistered"


def test_unregister_proxied_enclave_only_after_the_renewal_period() -> None:
    """The same rule for proxied enclaves, addressed by EnclaveInstanceAddress."""
    c = LocalChain(RUNTIME)
    submit(c, ALICE, c.call(*register(SkipAttestation(True))))
    address = EnclaveInstanceAddress(
        MRENCLAVE, ALICE.public_key, OpaqueSigner(ALICE.public_key + bytes(34))
    )
    unregister = c.call("Teerex", "unregister_proxied_enclave", address)
    assert submit(c, BOB, unregister).dispatch_error(1) == (
        "Teerex.UnregisterActiveEnclaveIsNotAllowed"
    )
    c.next_ms += teerex.MAX_ATTESTATION_RENEWAL_PERIOD
    result = submit(c, BOB, unregister)
    assert ("Teerex.RemovedProxiedEnclave", (address,)) in events(result)
    assert submit(c, BOB, unregister).dispatch_error(1) == "Teerex.EnclaveIsNotRegistered"
