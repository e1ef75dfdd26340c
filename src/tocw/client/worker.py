"""A connection to one worker's trusted RPC (PROTOCOL.md "Trusted RPC"), over pinned TLS.

Owns `Worker`: typed calls of the trusted RPC methods, with each answer's RpcReturnValue
decoded and an Error status raised as WorkerRequestError.

TLS: a worker serves wss with a self-signed certificate its enclave generated, so no CA can
vouch for it; the attestation does (report_data binds the certificate's public key). `Worker`
therefore learns the certificate from one TLS handshake that verifies nothing and only reads the
peer certificate (`fetch_certificate`), then opens the JSON-RPC connection with
`tocw.rpc.client.pinned_certificate_context` for exactly that certificate: the handshake itself
refuses any other. `verify_worker` then checks the attestation binds that certificate; until
then nothing the worker says is trusted. Callers that already know the certificate (the
CLI's demo, a second connection) pass it in and skip the first handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from tocw.client.attestation import decode_attestation
from tocw.client.errors import ClientTimeoutError, WorkerConnectionError, WorkerRequestError
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.scale import H256, U32, Bytes, Codec, Option, Str, Tuple
from tocw.primitives.shielding import ShieldingPublicKey
from tocw.primitives.trusted import (
    BASE_CODECS,
    REQUEST_CODEC,
    RPC_RETURN_VALUE_CODEC,
    Getter,
    Request,
    RpcReturnValue,
    TrustedCodecs,
)
from tocw.primitives.types import (
    AccountId,
    BlockHash,
    BlockNumber,
    MrEnclave,
    ShardId,
    from_hex,
    to_hex,
)
from tocw.rpc.client import RpcClient, pinned_certificate_context
from tocw.rpc.errors import (
    InvalidCertificateError,
    RpcCallError,
    RpcClientError,
    RpcConnectionError,
    RpcTimeoutError,
)
from tocw.tee.attestation import Attestation

DEFAULT_WORKER_URL: Final = "wss://127.0.0.1:2000"
DEFAULT_TIMEOUT: Final = 30.0
_OPTION_BYTES: Final = Option(Bytes)
_STATE_ROOT: Final = Tuple(U32, H256, H256)
_METHODS_PREFIX: Final = "methods: ["
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StateRoot:
    """`tocw_getStateRoot`: the shard's state after the last processed parentchain block."""

    block_number: BlockNumber
    block_hash: BlockHash
    state_root: bytes


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "wss" or not parts.hostname:
        raise WorkerConnectionError(
            f"{url!r} is not a wss:// URL: a worker's trusted RPC is always TLS "
            f"(default {DEFAULT_WORKER_URL})"
        )
    try:
        port = parts.port or 443
    except ValueError as e:
        raise WorkerConnectionError(f"{url!r}: {e}") from None
    return parts.hostname, port


async def fetch_certificate(url: str, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """DER of the certificate the worker at `url` presents, read from a TLS handshake that
    verifies nothing. Never trust it before verify_worker checked the attestation binds it."""
    host, port = _host_port(url)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
    except TimeoutError:
        raise WorkerConnectionError(f"cannot connect to the worker at {url}: timed out") from None
    except (OSError, ssl.SSLError) as e:
        raise WorkerConnectionError(
            f"cannot connect to the worker at {url}: {e.strerror or e}"
            if isinstance(e, OSError) and e.strerror
            else f"cannot connect to the worker at {url}: {e}"
        ) from None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    del reader
    if not der:
        raise WorkerConnectionError(f"the worker at {url} presented no TLS certificate")
    return bytes(der)


class Worker:
    """The trusted RPC of one worker: `async with Worker(url) as worker: ...`.

    `certificate` (DER) pins a known certificate; None learns it from a first handshake (see the
    module docstring). `codecs` are the trusted-call codecs of the worker's STF modules.
    """

    def __init__(
        self,
        url: str = DEFAULT_WORKER_URL,
        *,
        certificate: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        codecs: TrustedCodecs = BASE_CODECS,
    ) -> None:
        _host_port(url)
        self.url = url
        self.timeout = timeout
        self.codecs = codecs
        self._certificate = certificate
        self._rpc: RpcClient | None = None

    # -- lifecycle --

    async def open(self) -> None:
        if self._rpc is not None:
            return
        if self._certificate is None:
            self._certificate = await fetch_certificate(self.url, self.timeout)
        try:
            context = pinned_certificate_context(self._certificate)
        except InvalidCertificateError as e:
            raise WorkerConnectionError(f"the worker's certificate is unusable: {e}") from None
        try:
            self._rpc = await RpcClient.connect(
                self.url,
                ssl_context=context,
                timeout=self.timeout,
                open_timeout=self.timeout,
                ping_interval=None,
            )
        except RpcConnectionError as e:
            raise WorkerConnectionError(f"cannot connect to the worker: {e}") from None

    async def close(self) -> None:
        if self._rpc is not None:
            rpc, self._rpc = self._rpc, None
            await rpc.close()

    async def __aenter__(self) -> Worker:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def certificate(self) -> bytes:
        """DER of the pinned certificate."""
        if self._certificate is None:
            raise WorkerConnectionError("not connected to the worker yet")
        return self._certificate

    # -- raw calls --

    async def raw(self, method: str, params: list[Any] | None = None) -> Any:
        """The JSON `result` of any method, with errors mapped onto WorkerRequestError."""
        if self._rpc is None:
            await self.open()
        assert self._rpc is not None
        try:
            return await self._rpc.request(method, params or [])
        except RpcTimeoutError:
            raise ClientTimeoutError(
                f"the worker at {self.url} did not answer {method} within {self.timeout} s"
            ) from None
        except RpcConnectionError as e:
            raise WorkerConnectionError(f"lost the worker at {self.url}: {e}") from None
        except RpcCallError as e:
            raise WorkerRequestError(f"the worker refused {method}: {e.message}") from None
        except RpcClientError as e:
            raise WorkerRequestError(f"{method}: {e}") from None

    async def call(self, method: str, params: list[Any] | None = None) -> bytes:
        """The value of an RpcReturnValue answer; WorkerRequestError for an Error status."""
        result = await self.raw(method, params)
        value = _return_value(method, result)
        message = value.error_message()
        if message is not None:
            raise WorkerRequestError(f"the worker refused {method}: {message}")
        return value.value

    # -- the methods --

    async def shielding_key_json(self) -> str:
        return _decode(Str, await self.call("author_getShieldingKey"), "shielding key")

    async def shielding_key(self) -> ShieldingPublicKey:
        """The shielding key, UNVERIFIED: encrypt only to WorkerIdentity.shielding_key."""
        try:
            return ShieldingPublicKey.from_json(await self.shielding_key_json())
        except PrimitivesError as e:
            raise WorkerRequestError(f"the worker's shielding key is malformed: {e}") from None

    async def mrenclave(self) -> MrEnclave:
        return MrEnclave(_decode(H256, await self.call("tocw_getMrenclave"), "mrenclave"))

    async def attestation(self) -> Attestation:
        return decode_attestation(await self.call("tocw_getAttestation"))

    async def shard(self) -> ShardId:
        return ShardId(_decode(H256, await self.call("author_getShard"), "shard"))

    async def shard_vault(self) -> AccountId:
        return AccountId(_decode(H256, await self.call("author_getShardVault"), "shard vault"))

    async def health(self) -> dict[str, Any]:
        text = _decode(Str, await self.call("system_health"), "health")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise WorkerRequestError(f"system_health is not JSON: {e}") from None
        if not isinstance(value, dict):
            raise WorkerRequestError("system_health is not a JSON object")
        return value

    async def name(self) -> str:
        return _decode(Str, await self.call("system_name"), "name")

    async def version(self) -> str:
        return _decode(Str, await self.call("system_version"), "version")

    async def rpc_methods(self) -> list[str]:
        """Method names, from Integritee's "methods: [a, b]" answer."""
        result = await self.raw("rpc_methods")
        if not isinstance(result, str) or not result.startswith(_METHODS_PREFIX):
            raise WorkerRequestError(f"unexpected rpc_methods answer {str(result)[:80]!r}")
        inner = result[len(_METHODS_PREFIX) :].rstrip("]")
        return [m.strip() for m in inner.split(",") if m.strip()]

    async def state_root(self, shard: ShardId) -> StateRoot:
        raw = await self.call("tocw_getStateRoot", [to_hex(shard)])
        number, block_hash, root = _decode(_STATE_ROOT, raw, "state root")
        return StateRoot(BlockNumber(number), BlockHash(block_hash), root)

    async def execute_getter(self, shard: ShardId, getter: Getter) -> bytes | None:
        """SCALE of the getter's answer on `shard`; None when the worker has no value."""
        request = Request(shard, self.codecs.getter.encode(getter))
        raw = await self.call("state_executeGetter", [to_hex(REQUEST_CODEC.encode(request))])
        value: bytes | None = _decode(_OPTION_BYTES, raw, "getter result")
        return value


def _return_value(method: str, result: Any) -> RpcReturnValue:
    if not isinstance(result, str):
        raise WorkerRequestError(f"{method}: expected a hex result, got {type(result).__name__}")
    try:
        return RPC_RETURN_VALUE_CODEC.decode(from_hex(result))
    except (ValueError, PrimitivesError) as e:
        raise WorkerRequestError(f"{method}: the answer is not an RpcReturnValue: {e}") from None


def _decode(codec: Codec[T], raw: bytes, what: str) -> T:
    try:
        return codec.decode(raw)
    except PrimitivesError as e:
        raise WorkerRequestError(f"the worker's {what} does not decode: {e}") from None
