"""The trusted RPC's method handlers (PROTOCOL.md "Trusted RPC"), sans-I/O.

Owns what every trusted RPC method answers, on top of tocw.rpc.dispatch: `TrustedRpcApi` (the
built-in methods over an `Enclave`), `module_rpc_methods` (the read-only methods STF modules
declare with `RpcMethodSpec`), and `build_trusted_rpc`, which merges those with a deployment's
own registries into one `Dispatcher` and adds `rpc_methods`. The worker's wss transport
(tocw.worker.servers) only moves text in and out of that dispatcher, so everything here is
tested without sockets. The handlers live in the enclave layer because they read the public
halves of its secrets and its state (ARCHITECTURE.md "Layers").

Answers, as Integritee's `enclave-runtime/src/rpc/worker_api_direct.rs` and
`sidechain/rpc-handler/src/direct_top_pool_api.rs` (sdk v0.13):

- A success is a JSON-RPC `result` holding hex(SCALE(RpcReturnValue{value, do_watch: false,
  status: Ok})).
- Whatever goes wrong with well-formed params is ALSO a JSON-RPC success, carrying
  RpcReturnValue{status: Error, value: SCALE(String(message))}: hex that does not decode, a
  Request or shard that does not SCALE-decode, an unknown shard, a getter that does not decode
  or whose signature does not verify, no block imported yet, an enclave failure. Integritee's
  handlers answer all of these with `compute_hex_encoded_return_error`, and its clients look at
  the status, not for a JSON-RPC error.
- JSON-RPC error objects are kept for a message that is not a usable JSON-RPC call at all:
  -32700 parse error, -32600 invalid request, -32601 unknown method, -32007 oversized request
  (tocw.rpc decides these before any handler runs), and -32602 invalid params when the params
  are not a list of hex strings of the method's arity. tocw: Integritee answers a params list
  that is not strings with an Error status; PROTOCOL.md names -32602 for it, and a caller
  sending the wrong shape has a bug a status would hide. A handler bug is -32603 with no detail.
- `rpc_methods` answers, exactly as Integritee, a plain JSON string "methods: [a, b, ...]"
  (not an RpcReturnValue), listing every registered method.
- Integritee's system_health/system_name/system_version are placeholders ("hello, world"); here
  they are real and follow the general rule: RpcReturnValue{Ok, SCALE(String)}, the health
  as JSON text, saying loudly when the TEE is not secure.

Methods that take the enclave's lock (state, getters, attestation) run in a worker thread so a
long block import never stalls the event loop that serves every other connection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from tocw import __version__
from tocw.enclave.api import Enclave
from tocw.enclave.errors import EnclaveError, EnclaveUsageError
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.scale import H256, U32, Bytes, Option, Str, Tuple
from tocw.primitives.trusted import REQUEST_CODEC, RPC_RETURN_VALUE_CODEC, RpcReturnValue
from tocw.primitives.types import ShardId, from_hex, to_hex
from tocw.rpc.dispatch import Dispatcher, Handler
from tocw.rpc.errors import DuplicateMethodError, invalid_params
from tocw.rpc.messages import Limits
from tocw.stf.errors import StfError
from tocw.stf.types import RpcMethodSpec
from tocw.tee.attestation import ATTESTATION_CODEC

T = TypeVar("T")

NAME: Final = "tocw"
# Frames above this are refused by the transport and messages above it by the dispatcher: the
# largest legitimate request (a getter Request) is a few hundred bytes.
MAX_REQUEST_SIZE: Final = 1024 * 1024
TRUSTED_RPC_LIMITS: Final = Limits(max_size=MAX_REQUEST_SIZE, max_batch=100, max_depth=16)

DIRECT_INVOCATION_UNSUPPORTED: Final = "direct invocation is not supported by an off-chain worker"
NOT_SECURE_WARNING: Final = (
    "NOT SECURE: the {tee} TEE backend protects nothing (keys and state are readable by the "
    "host); use it for development only"
)

OPTION_BYTES: Final = Option(Bytes)
STATE_ROOT_CODEC: Final = Tuple(U32, H256, H256)  # (BlockNumber, block hash, state root)
SHARD_LEN: Final = 32


@dataclass(frozen=True, slots=True)
class TrustedRpcConfig:
    """What the trusted RPC says about its worker beyond what the enclave knows.

    shard: the shard this worker serves (author_getShard, author_getShardVault).
    mu_ra_url / untrusted_url: the URLs other workers and clients should use to reach this
        worker (author_getMuRaUrl / author_getUntrustedUrl); None answers an Error status
        instead of inventing one.
    host_health: extra fields for system_health from the untrusted host (e.g. finalized head,
        lag, isSyncing); called in a worker thread, so it must be thread-safe. The enclave's own
        fields (tee, isSecure, lastImportedBlock, ...) cannot be overridden by it.
    """

    shard: ShardId
    mu_ra_url: str | None = None
    untrusted_url: str | None = None
    name: str = NAME
    version: str = __version__
    host_health: Callable[[], Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.shard, bytes) or len(self.shard) != SHARD_LEN:
            raise EnclaveUsageError("the trusted RPC's shard must be 32 bytes")


# -- answers --------------------------------------------------------------------------------------


def ok_result(value: bytes) -> str:
    """hex(SCALE(RpcReturnValue{value, do_watch: false, status: Ok}))."""
    return to_hex(RPC_RETURN_VALUE_CODEC.encode(RpcReturnValue.ok(value)))


def error_result(message: str) -> str:
    """hex(SCALE(RpcReturnValue{SCALE(String(message)), do_watch: false, status: Error}))."""
    return to_hex(RPC_RETURN_VALUE_CODEC.encode(RpcReturnValue.error(message)))


class _RefusedError(EnclaveError):
    """A handler's own reason to answer with an Error status (bad hex, unknown shard, ...);
    never leaves this module."""


def _require_str(value: object, what: str) -> str:
    """Params are lists of hex strings (PROTOCOL.md); anything else is -32602."""
    if not isinstance(value, str):
        raise invalid_params(f"{what} must be a hex string, got {type(value).__name__}")
    return value


def _hex_param(value: object, what: str) -> bytes:
    """Bytes of one hex-string param: -32602 if it is not a string; raised inside `_answer`,
    a string that is not hex becomes an Error status."""
    try:
        return from_hex(_require_str(value, what))
    except ValueError:
        raise _RefusedError(f"{what} is not valid hex") from None


def _shard_param(value: object) -> ShardId:
    raw = _hex_param(value, "shard")
    if len(raw) != SHARD_LEN:
        raise _RefusedError(f"shard must be 32 bytes, got {len(raw)}")
    return ShardId(raw)


async def _answer(produce: Callable[[], bytes], *, in_thread: bool = False) -> str:
    """Run `produce` and wrap its bytes as an Ok RpcReturnValue, or the reason it refused as an
    Error one. RpcError (e.g. invalid params) and bugs propagate to the dispatcher."""
    try:
        value = await asyncio.to_thread(produce) if in_thread else produce()
    except (_RefusedError, EnclaveError, StfError, PrimitivesError) as e:
        return error_result(str(e) or type(e).__name__)
    return ok_result(value)


# -- the built-in methods -------------------------------------------------------------------------


class TrustedRpcApi:
    """The built-in trusted RPC methods of PROTOCOL.md, over one enclave.

    Each public method is one RPC method (its parameters are the RPC params, which the
    dispatcher binds and counts); `methods()` is the explicit registry.
    """

    def __init__(self, enclave: Enclave, config: TrustedRpcConfig) -> None:
        self.enclave = enclave
        self.config = config

    def methods(self) -> dict[str, Handler]:
        return {
            "author_getShieldingKey": self.author_get_shielding_key,
            "author_getShard": self.author_get_shard,
            "author_getShardVault": self.author_get_shard_vault,
            "author_getMuRaUrl": self.author_get_mu_ra_url,
            "author_getUntrustedUrl": self.author_get_untrusted_url,
            "author_submitExtrinsic": self.author_submit_extrinsic,
            "author_submitAndWatchExtrinsic": self.author_submit_and_watch_extrinsic,
            "state_executeGetter": self.state_execute_getter,
            "system_health": self.system_health,
            "system_name": self.system_name,
            "system_version": self.system_version,
            "tocw_getMrenclave": self.tocw_get_mrenclave,
            "tocw_getAttestation": self.tocw_get_attestation,
            "tocw_getStateRoot": self.tocw_get_state_root,
        }

    async def author_get_shielding_key(self) -> str:
        """SCALE(String(shielding key JSON)), the RSA-3072 key clients encrypt calls to."""
        return await _answer(lambda: Str.encode(self.enclave.shielding_public_key_json()))

    async def author_get_shard(self) -> str:
        """The shard this worker serves (32 bytes)."""
        return ok_result(bytes(self.config.shard))

    async def author_get_shard_vault(self) -> str:
        """The shard's vault account on the parentchain: the shard bytes as an AccountId, as
        EnclaveBridge.shield_funds pays into it."""
        return ok_result(bytes(self.config.shard))

    async def author_get_mu_ra_url(self) -> str:
        return await _answer(lambda: Str.encode(_configured(self.config.mu_ra_url, "mu-ra url")))

    async def author_get_untrusted_url(self) -> str:
        return await _answer(
            lambda: Str.encode(_configured(self.config.untrusted_url, "untrusted worker url"))
        )

    async def author_submit_extrinsic(self, request: str) -> str:
        """Direct invocation needs a sidechain; an off-chain worker only executes calls that
        come through the parentchain (EnclaveBridge.invoke)."""
        _require_str(request, "request")
        return error_result(DIRECT_INVOCATION_UNSUPPORTED)

    async def author_submit_and_watch_extrinsic(self, request: str) -> str:
        _require_str(request, "request")
        return error_result(DIRECT_INVOCATION_UNSUPPORTED)

    async def state_execute_getter(self, request: str) -> str:
        """[hex(SCALE(Request{shard, cyphertext: SCALE(Getter)}))] -> SCALE(Option<Vec<u8>>).

        The getter travels in clear inside the TLS channel (as Integritee); a trusted getter
        answers only when its signature is the asked account's.
        """
        _require_str(request, "request")

        def run() -> bytes:
            raw = _hex_param(request, "request")
            try:
                req = REQUEST_CODEC.decode(raw)
            except PrimitivesError as e:
                raise _RefusedError(f"could not decode the request: {e}") from None
            return OPTION_BYTES.encode(self.enclave.execute_getter(req.shard, req.cyphertext))

        return await _answer(run, in_thread=True)

    async def system_health(self) -> str:
        """SCALE(String(JSON)) of the worker's health; `isSecure` false (and a `warning`) when
        the TEE backend protects nothing."""

        def run() -> bytes:
            return Str.encode(json.dumps(self.health(), sort_keys=True))

        return await _answer(run, in_thread=True)

    def health(self) -> dict[str, Any]:
        """The fields system_health reports (blocking: takes the enclave's lock)."""
        enclave = self.enclave
        last = enclave.last_imported_block()
        fields: dict[str, Any] = {}
        if self.config.host_health is not None:
            fields.update(self.config.host_health())
        fields.update(
            {
                "name": self.config.name,
                "version": self.config.version,
                "tee": enclave.tee_name,
                "isSecure": enclave.is_secure,
                "mrenclave": to_hex(bytes(enclave.mrenclave())),
                "shard": to_hex(bytes(self.config.shard)),
                "shards": [to_hex(bytes(s)) for s in enclave.shards()],
                "lastImportedBlock": (
                    None if last is None else {"number": last[0], "hash": to_hex(bytes(last[1]))}
                ),
            }
        )
        if not enclave.is_secure:
            fields["warning"] = NOT_SECURE_WARNING.format(tee=enclave.tee_name)
        return fields

    async def system_name(self) -> str:
        return ok_result(Str.encode(self.config.name))

    async def system_version(self) -> str:
        return ok_result(Str.encode(self.config.version))

    async def tocw_get_mrenclave(self) -> str:
        return ok_result(bytes(self.enclave.mrenclave()))

    async def tocw_get_attestation(self) -> str:
        """SCALE(Attestation): evidence binding the signer, shielding and TLS keys."""
        return await _answer(
            lambda: ATTESTATION_CODEC.encode(self.enclave.attestation()), in_thread=True
        )

    async def tocw_get_state_root(self, shard: str) -> str:
        """[hex(shard)] -> SCALE((BlockNumber, block hash, state root)) of the last processed
        block, so operators can compare workers of one shard."""
        _require_str(shard, "shard")

        def run() -> bytes:
            shard_id = _shard_param(shard)
            if shard_id not in self.enclave.shards():
                raise _RefusedError(f"unknown shard 0x{bytes(shard_id).hex()}")
            info = self.enclave.state_root(shard_id)
            return STATE_ROOT_CODEC.encode(
                (info.block_number, bytes(info.block_hash), info.state_root)
            )

        return await _answer(run, in_thread=True)


def _configured(value: str | None, what: str) -> str:
    if value is None:
        raise _RefusedError(f"this worker has no {what} configured")
    return value


# -- methods contributed by STF modules ---------------------------------------------------------


def module_rpc_methods(enclave: Enclave) -> dict[str, Handler]:
    """The RPC methods the enclave's STF modules declare (`StfModule.rpc_methods`).

    Each is served as `name([hex(shard), hex(param)...])`: the enclave resolves the shard's
    committed state, hex-decodes the params and runs the module's pure query on them. A module
    error (ValueError, StfError) is the caller's Error status. Two modules declaring the same
    name is a DuplicateMethodError when the dispatcher is built.
    """
    methods: dict[str, Handler] = {}
    declared_by: dict[str, str] = {}
    for module in enclave.stf.modules:
        for spec in module.rpc_methods:
            if spec.name in declared_by:
                raise DuplicateMethodError(
                    f"RPC method {spec.name!r} is declared by STF modules "
                    f"{declared_by[spec.name]!r} and {module.name!r}"
                )
            declared_by[spec.name] = module.name
            methods[spec.name] = _module_handler(enclave, spec)
    return methods


def _module_handler(enclave: Enclave, spec: RpcMethodSpec) -> Handler:
    async def handler(shard: str, *params: str) -> str:
        _require_str(shard, "shard")
        for i, param in enumerate(params):
            _require_str(param, f"param {i + 1}")

        def run() -> bytes:
            shard_id = _shard_param(shard)
            args = [_hex_param(p, f"param {i + 1}") for i, p in enumerate(params)]
            try:
                value = enclave.query_state(shard_id, lambda view: spec.query(view, args))
            except ValueError as e:  # the module's "bad params", ScaleDecodeError included
                raise _RefusedError(f"{spec.name}: {e}") from None
            if not isinstance(value, bytes):
                raise TypeError(f"RPC method {spec.name} returned {type(value).__name__}")
            return value

        return await _answer(run, in_thread=True)

    handler.__name__ = handler.__qualname__ = spec.name
    handler.__doc__ = spec.query.__doc__
    return handler


# -- the dispatcher -------------------------------------------------------------------------------


def methods_listing(names: Sequence[str]) -> str:
    """rpc_methods' answer, formatted exactly as Integritee's `get_all_rpc_methods_string`."""
    return f"methods: [{', '.join(names)}]"


def build_trusted_rpc(
    enclave: Enclave,
    config: TrustedRpcConfig,
    *extra: Mapping[str, Handler],
    limits: Limits = TRUSTED_RPC_LIMITS,
) -> Dispatcher:
    """The trusted RPC's dispatcher: built-in methods, the STF modules' methods, a deployment's
    own registries (`extra`), and `rpc_methods` listing all of them.

    Any name defined twice raises DuplicateMethodError here, at startup, instead of one method
    silently shadowing another.
    """
    dispatcher = Dispatcher(
        TrustedRpcApi(enclave, config).methods(), module_rpc_methods(enclave), *extra, limits=limits
    )

    async def rpc_methods() -> str:
        return methods_listing(dispatcher.method_names())

    dispatcher.register("rpc_methods", rpc_methods)
    return dispatcher


def decode_result(result: object) -> RpcReturnValue:
    """The RpcReturnValue inside a trusted RPC `result`; ValueError if it holds none."""
    if not isinstance(result, str):
        raise ValueError(f"expected a hex string result, got {type(result).__name__}")
    try:
        return RPC_RETURN_VALUE_CODEC.decode(from_hex(result))
    except (ValueError, PrimitivesError) as e:
        raise ValueError(f"result is not an RpcReturnValue: {e}") from None
