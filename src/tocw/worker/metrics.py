"""The worker's Prometheus metrics: one `Metrics` object over its own CollectorRegistry.

Owns every metric name and label set the worker exports on /metrics (served by
tocw.worker.servers.MetricsServer), and the small vocabularies that keep label values bounded:
an RPC method label is a registered method name or "unknown" (callers choose method names, so
using them raw would let any client grow the registry without bound), and an indirect-call
failure reason is one of INDIRECT_CALL_FAILURE_REASONS.

No global registry: two workers in one process (tests, the demo) each have their own Metrics.
prometheus_client's metrics are thread-safe, so the sync loop, the RPC transport and the HTTP
server thread all use one object.

    tocw_worker_info{version, tee, mrenclave, shard, signer}   1
    tocw_tee_is_secure                                          0/1
    tocw_registered / tocw_initialized                          0/1
    tocw_imported_block_height                                  last imported parentchain block
    tocw_imported_blocks_total                                  blocks imported by this process
    tocw_finalized_head_height                                  last finalized head seen
    tocw_finalized_head_lag_blocks                              finalized head - imported block
    tocw_sync_blocks_per_second / tocw_sync_remaining_blocks    catch-up progress
    tocw_indirect_calls_executed_total
    tocw_indirect_calls_failed_total{reason}
    tocw_extrinsics_submitted_total{call} / tocw_extrinsic_submission_failures_total{call}
    tocw_rpc_requests_total{method, status}
    tocw_enclave_account_balance                                free balance, in planck
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tocw.enclave.errors import ParentchainExtrinsicFailedError
from tocw.primitives.errors import InvalidCiphertextError, PrimitivesError
from tocw.stf.errors import (
    BadOriginError,
    DispatchError,
    InvalidSignatureError,
    NonceExhaustedError,
    NonceMismatchError,
    OperationDecodeError,
    UnsupportedOperationError,
    WrongShardError,
)

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
UNKNOWN_METHOD: Final = "unknown"
OTHER_REASON: Final = "other"

# Why an indirect call was skipped or failed; the worker logs the detail, the metric counts the
# kind (PROTOCOL.md execution rules, ISSUE "Sync loop").
INDIRECT_CALL_FAILURE_REASONS: Final = (
    "undecodable",  # the extrinsic, the plaintext or the operation does not decode, or it is
    # not an indirect_call (a getter or direct call sent through invoke)
    "bad_ciphertext",  # not a valid RSA-OAEP ciphertext for the shielding key
    "bad_signature",
    "bad_nonce",
    "wrong_shard",
    "bad_origin",  # a client sent an enclave-only call, or a non-root set_balance
    "dispatch_failed",  # accepted (nonce bumped), then failed: e.g. insufficient balance
    "extrinsic_failed",  # the parentchain extrinsic itself failed (no ExtrinsicSuccess)
    OTHER_REASON,
)

# Status labels of tocw_rpc_requests_total: the JSON-RPC outcome, with the trusted RPC's
# in-band Error status told apart from a clean success.
RPC_STATUSES: Final = (
    "ok",
    "error_status",
    "parse_error",
    "invalid_request",
    "method_not_found",
    "invalid_params",
    "internal_error",
    "oversized",
    "error",
)


def failure_reason(error: BaseException | None) -> str:
    """The INDIRECT_CALL_FAILURE_REASONS label for an error the executor reported."""
    if error is None:
        return OTHER_REASON
    # Order matters: specific kinds before their bases.
    table: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
        (ParentchainExtrinsicFailedError, "extrinsic_failed"),
        (InvalidCiphertextError, "bad_ciphertext"),
        (InvalidSignatureError, "bad_signature"),
        ((NonceMismatchError, NonceExhaustedError), "bad_nonce"),
        (WrongShardError, "wrong_shard"),
        (BadOriginError, "bad_origin"),
        ((OperationDecodeError, UnsupportedOperationError), "undecodable"),
        (DispatchError, "dispatch_failed"),
        (PrimitivesError, "undecodable"),
    )
    for kinds, reason in table:
        if isinstance(error, kinds):
            return reason
    return OTHER_REASON


class Metrics:
    """Every metric of one worker, registered in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.info = Info("tocw_worker", "Identity of this worker", registry=r)
        self.is_secure = Gauge(
            "tocw_tee_is_secure", "1 if the TEE backend protects secrets (0 for sim)", registry=r
        )
        self.registered = Gauge(
            "tocw_registered", "1 once the enclave is registered on the parentchain", registry=r
        )
        self.initialized = Gauge(
            "tocw_initialized", "1 once registered and synced to the finalized head", registry=r
        )
        self.imported_height = Gauge(
            "tocw_imported_block_height",
            "Last parentchain block imported and committed",
            registry=r,
        )
        self.imported_blocks = Counter(
            "tocw_imported_blocks", "Parentchain blocks imported by this process", registry=r
        )
        self.finalized_height = Gauge(
            "tocw_finalized_head_height", "Last finalized parentchain head seen", registry=r
        )
        self.finalized_lag = Gauge(
            "tocw_finalized_head_lag_blocks",
            "Finalized head minus the last imported block",
            registry=r,
        )
        self.sync_rate = Gauge(
            "tocw_sync_blocks_per_second",
            "Blocks imported per second while catching up",
            registry=r,
        )
        self.sync_remaining = Gauge(
            "tocw_sync_remaining_blocks",
            "Blocks left to import to reach the finalized head",
            registry=r,
        )
        self.indirect_executed = Counter(
            "tocw_indirect_calls_executed",
            "Indirect calls (invoke, shield_funds) accepted and executed",
            registry=r,
        )
        self.indirect_failed = Counter(
            "tocw_indirect_calls_failed",
            "Indirect calls skipped or failed, by reason",
            ["reason"],
            registry=r,
        )
        self.extrinsics_submitted = Counter(
            "tocw_extrinsics_submitted",
            "Extrinsics the enclave signed and the host submitted, by call",
            ["call"],
            registry=r,
        )
        self.extrinsic_failures = Counter(
            "tocw_extrinsic_submission_failures",
            "Failed submission attempts (retried with backoff), by call",
            ["call"],
            registry=r,
        )
        self.rpc_requests = Counter(
            "tocw_rpc_requests",
            "Trusted RPC requests, by method and outcome",
            ["method", "status"],
            registry=r,
        )
        self.enclave_balance = Gauge(
            "tocw_enclave_account_balance",
            "Free balance of the enclave's parentchain account (smallest unit)",
            registry=r,
        )
        for reason in INDIRECT_CALL_FAILURE_REASONS:
            self.indirect_failed.labels(reason=reason)  # export zeros from the start
        self._rpc_methods: frozenset[str] = frozenset()
        self._imported: int | None = None
        self._finalized: int | None = None

    # -- identity --------------------------------------------------------------------------------

    def set_worker_info(
        self,
        *,
        version: str,
        tee: str,
        is_secure: bool,
        mrenclave: bytes,
        shard: bytes,
        signer: str,
    ) -> None:
        self.info.info(
            {
                "version": version,
                "tee": tee,
                "mrenclave": "0x" + bytes(mrenclave).hex(),
                "shard": "0x" + bytes(shard).hex(),
                "signer": signer,
            }
        )
        self.is_secure.set(1 if is_secure else 0)

    def set_registered(self, registered: bool) -> None:
        self.registered.set(1 if registered else 0)

    def set_initialized(self, initialized: bool) -> None:
        self.initialized.set(1 if initialized else 0)

    # -- sync ------------------------------------------------------------------------------------

    def block_imported(self, number: int, count: int = 1) -> None:
        """`count` blocks were committed, the last being `number`."""
        self._imported = number
        self.imported_height.set(number)
        if count:
            self.imported_blocks.inc(count)
        self._update_lag()

    def finalized_head(self, number: int) -> None:
        self._finalized = number
        self.finalized_height.set(number)
        self._update_lag()

    def _update_lag(self) -> None:
        if self._imported is not None and self._finalized is not None:
            self.finalized_lag.set(max(0, self._finalized - self._imported))

    def sync_progress(self, blocks_per_second: float, remaining: int) -> None:
        self.sync_rate.set(blocks_per_second)
        self.sync_remaining.set(max(0, remaining))

    # -- indirect calls and extrinsics ------------------------------------------------------------

    def indirect_call_executed(self, count: int = 1) -> None:
        if count:
            self.indirect_executed.inc(count)

    def indirect_call_failed(self, reason: str) -> None:
        """Count one failure; a reason outside the vocabulary counts as "other"."""
        if reason not in INDIRECT_CALL_FAILURE_REASONS:
            reason = OTHER_REASON
        self.indirect_failed.labels(reason=reason).inc()

    def extrinsic_submitted(self, call: str) -> None:
        self.extrinsics_submitted.labels(call=call).inc()

    def extrinsic_submission_failed(self, call: str) -> None:
        self.extrinsic_failures.labels(call=call).inc()

    def set_enclave_balance(self, balance: int) -> None:
        self.enclave_balance.set(balance)

    # -- RPC -------------------------------------------------------------------------------------

    def set_rpc_methods(self, methods: Iterable[str]) -> None:
        """The method names to label requests with; anything else is "unknown"."""
        self._rpc_methods = frozenset(methods)

    def rpc_request(self, method: str, status: str) -> None:
        """Count one trusted RPC request (the transport's RequestObserver)."""
        if method not in self._rpc_methods:
            method = UNKNOWN_METHOD
        if status not in RPC_STATUSES:
            status = "error"
        self.rpc_requests.labels(method=method, status=status).inc()

    # -- exposition ------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
