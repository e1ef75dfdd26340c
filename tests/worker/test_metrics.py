"""The worker's Prometheus metrics: named series, bounded labels, one registry per worker, and
/metrics served over HTTP."""

from __future__ import annotations

import http.client

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tocw.enclave.errors import ParentchainExtrinsicFailedError
from tocw.primitives.errors import InvalidCiphertextError, ScaleDecodeError
from tocw.stf.errors import (
    BadOriginError,
    InsufficientBalanceError,
    InvalidSignatureError,
    NonceMismatchError,
    OperationDecodeError,
    UnsupportedOperationError,
    WrongShardError,
)
from tocw.worker.metrics import (
    INDIRECT_CALL_FAILURE_REASONS,
    Metrics,
    failure_reason,
)
from tocw.worker.servers import MetricsServer, ServerError


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed back with prometheus-client's own parser."""
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, tuple(sorted(labels.items())))]


def test_metrics_exports_the_named_series() -> None:
    """The series the issue names are all exported, with the values set."""
    m = Metrics()
    m.set_worker_info(
        version="0.1.0",
        tee="sim",
        is_secure=False,
        mrenclave=b"\x01" * 32,
        shard=b"\x01" * 32,
        signer="5Grw",
    )
    m.block_imported(40, count=40)
    m.finalized_head(42)
    m.sync_progress(512.5, 2)
    m.indirect_call_executed(3)
    m.indirect_call_failed("bad_signature")
    m.set_rpc_methods(["author_getShard"])
    m.rpc_request("author_getShard", "ok")
    m.set_enclave_balance(10**18)
    m.set_registered(True)
    m.set_initialized(False)
    m.extrinsic_submitted("confirm_processed_parentchain_block")
    m.extrinsic_submission_failed("unshield_funds")
    assert value(m, "tocw_imported_block_height") == 40
    assert value(m, "tocw_imported_blocks_total") == 40
    assert value(m, "tocw_finalized_head_height") == 42
    assert value(m, "tocw_finalized_head_lag_blocks") == 2
    assert value(m, "tocw_sync_blocks_per_second") == 512.5
    assert value(m, "tocw_sync_remaining_blocks") == 2
    assert value(m, "tocw_indirect_calls_executed_total") == 3
    assert value(m, "tocw_indirect_calls_failed_total", reason="bad_signature") == 1
    assert value(m, "tocw_rpc_requests_total", method="author_getShard", status="ok") == 1
    assert value(m, "tocw_enclave_account_balance") == 1e18
    assert value(m, "tocw_tee_is_secure") == 0
    assert value(m, "tocw_registered") == 1
    assert value(m, "tocw_initialized") == 0
    call = "confirm_processed_parentchain_block"
    assert value(m, "tocw_extrinsics_submitted_total", call=call) == 1
    assert value(m, "tocw_extrinsic_submission_failures_total", call="unshield_funds") == 1
    info = value(
        m,
        "tocw_worker_info",
        version="0.1.0",
        tee="sim",
        mrenclave="0x" + "01" * 32,
        shard="0x" + "01" * 32,
        signer="5Grw",
    )
    assert info == 1


def test_metrics_failure_reasons_exported_from_start() -> None:
    """Every failure reason has a zero series before the first failure (alerts can use rate())."""
    m = Metrics()
    for reason in INDIRECT_CALL_FAILURE_REASONS:
        assert value(m, "tocw_indirect_calls_failed_total", reason=reason) == 0


def test_metrics_lag_follows_both_heights() -> None:
    """Lag = finalized - imported, updated by either, never negative."""
    m = Metrics()
    m.finalized_head(100)
    m.block_imported(90)
    assert value(m, "tocw_finalized_head_lag_blocks") == 10
    m.block_imported(100)
    assert value(m, "tocw_finalized_head_lag_blocks") == 0
    m.finalized_head(99)  # a stale head seen after the import
    assert value(m, "tocw_finalized_head_lag_blocks") == 0


def test_metrics_labels_stay_bounded() -> None:
    """Unknown reasons count as "other", unregistered methods as "unknown", odd statuses as
    "error": clients cannot create series."""
    m = Metrics()
    m.indirect_call_failed("a reason someone made up")
    m.set_rpc_methods(["system_name"])
    m.rpc_request("evil_method_name_" + "x" * 50, "ok")
    m.rpc_request("system_name", "weird")
    assert value(m, "tocw_indirect_calls_failed_total", reason="other") == 1
    assert value(m, "tocw_rpc_requests_total", method="unknown", status="ok") == 1
    assert value(m, "tocw_rpc_requests_total", method="system_name", status="error") == 1
    assert not any("evil" in str(key) for key in samples(m))


def test_metrics_registries_are_per_worker() -> None:
    """Two workers in one process do not share (or clash on) metrics."""
    a, b = Metrics(), Metrics()
    a.block_imported(5)
    assert value(a, "tocw_imported_block_height") == 5
    assert value(b, "tocw_imported_block_height") == 0


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (InvalidCiphertextError("len"), "bad_ciphertext"),
        (InvalidSignatureError("sig"), "bad_signature"),
        (NonceMismatchError(1, 0), "bad_nonce"),
        (WrongShardError("shard"), "wrong_shard"),
        (BadOriginError("root"), "bad_origin"),
        (OperationDecodeError("op"), "undecodable"),
        (UnsupportedOperationError("getter via invoke"), "undecodable"),
        (ParentchainExtrinsicFailedError("failed on chain"), "extrinsic_failed"),
        (ScaleDecodeError("bytes"), "undecodable"),
        (InsufficientBalanceError("poor"), "dispatch_failed"),
        (RuntimeError("?"), "other"),
        (None, "other"),
    ],
)
def test_metrics_failure_reason_maps_errors(error: BaseException | None, reason: str) -> None:
    """Executor errors map onto the bounded reason vocabulary."""
    assert failure_reason(error) == reason
    assert reason in INDIRECT_CALL_FAILURE_REASONS


def test_metrics_server_serves_exposition() -> None:
    """GET /metrics answers the Prometheus text format with the current values; other paths
    are 404; stopping frees the server."""
    m = Metrics()
    m.block_imported(7)
    with MetricsServer(m, "127.0.0.1", 0) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            body = response.read().decode()
            assert response.status == 200
            assert (response.getheader("Content-Type") or "").startswith("text/plain")
            assert "tocw_imported_block_height 7.0" in body
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            assert response.status == 404
        finally:
            conn.close()
        assert server.url == f"http://127.0.0.1:{server.port}"
    with pytest.raises(ServerError):
        _ = server.port
