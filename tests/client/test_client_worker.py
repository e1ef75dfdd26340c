"""tocw.client.worker: the trusted RPC client over TLS pinned to the worker's certificate.

A real wss server (tocw.worker.servers.TrustedRpcServer with an enclave-made TLS identity) with
canned answers in PROTOCOL.md's formats; no enclave behind it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tocw.client.calls import free_balance_getter, some_value_getter
from tocw.client.errors import WorkerConnectionError, WorkerRequestError
from tocw.client.worker import Worker, fetch_certificate
from tocw.enclave.keys import TlsIdentity
from tocw.enclave.trusted_rpc import error_result, ok_result
from tocw.primitives.keys import Keypair
from tocw.primitives.scale import U128, Bytes, Option, Str
from tocw.primitives.shielding import ShieldingKey
from tocw.primitives.trusted import BASE_CODECS, REQUEST_CODEC, TrustedGetterOp
from tocw.primitives.types import ShardId, from_hex
from tocw.rpc.dispatch import Dispatcher
from tocw.worker.servers import TrustedRpcServer

SHARD = ShardId(b"\x07" * 32)
KEY = ShieldingKey.generate().public_key()
TLS = TlsIdentity.generate()
CERT = TLS.certificate.public_bytes(Encoding.DER)
BOB = Keypair.from_uri("//Bob")


def _handlers(seen: list[bytes]) -> dict[str, Callable[..., Awaitable[Any]]]:
    async def shielding_key() -> str:
        return ok_result(Str.encode(KEY.to_json()))

    async def shard() -> str:
        return ok_result(bytes(SHARD))

    async def health() -> str:
        return ok_result(Str.encode(json.dumps({"isSecure": False, "tee": "sim"})))

    async def execute_getter(request: str) -> str:
        seen.append(from_hex(request))
        return ok_result(Option(Bytes).encode(U128.encode(42)))

    async def refuses() -> str:
        return error_result("unknown shard 0x00")

    async def methods() -> str:
        return "methods: [author_getShard, system_health]"

    async def not_hex() -> str:
        return "0xzz"

    return {
        "author_getShieldingKey": shielding_key,
        "author_getShard": shard,
        "system_health": health,
        "state_executeGetter": execute_getter,
        "tocw_getMrenclave": refuses,
        "rpc_methods": methods,
        "system_name": not_hex,
    }


def _run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_worker_learns_and_pins_the_certificate() -> None:
    """The first handshake reads the served certificate; calls then go over pinned TLS."""

    async def go() -> None:
        async with TrustedRpcServer(
            Dispatcher(_handlers([])), "127.0.0.1", 0, TLS.server_context()
        ) as srv:
            assert await fetch_certificate(srv.url) == CERT
            async with Worker(srv.url) as worker:
                assert worker.certificate == CERT
                assert await worker.shielding_key() == KEY
                assert await worker.shard() == SHARD
                assert (await worker.health())["tee"] == "sim"
                assert await worker.rpc_methods() == ["author_getShard", "system_health"]

    _run(go())


def test_worker_refuses_a_certificate_other_than_the_pinned_one() -> None:
    """With another certificate pinned, the TLS handshake itself fails."""

    async def go() -> None:
        other = TlsIdentity.generate().certificate.public_bytes(Encoding.DER)
        async with TrustedRpcServer(
            Dispatcher(_handlers([])), "127.0.0.1", 0, TLS.server_context()
        ) as srv:
            with pytest.raises(WorkerConnectionError, match="cannot connect"):
                await Worker(srv.url, certificate=other).open()

    _run(go())


def test_worker_getter_request_format() -> None:
    """execute_getter sends hex(SCALE(Request{shard, SCALE(Getter)})) and decodes Option."""

    async def go() -> None:
        seen: list[bytes] = []
        async with (
            TrustedRpcServer(
                Dispatcher(_handlers(seen)), "127.0.0.1", 0, TLS.server_context()
            ) as srv,
            Worker(srv.url) as worker,
        ):
            getter = free_balance_getter(BOB)
            assert await worker.execute_getter(SHARD, getter) == U128.encode(42)
            await worker.execute_getter(SHARD, some_value_getter())
        request = REQUEST_CODEC.decode(seen[0])
        assert request.shard == SHARD
        decoded = BASE_CODECS.getter.decode(request.cyphertext)
        assert isinstance(decoded, TrustedGetterOp)
        assert decoded == getter

    _run(go())


def test_worker_error_status_and_bad_answers_are_typed() -> None:
    """An Error status, an unknown method and a non-hex answer are WorkerRequestError."""

    async def go() -> None:
        async with (
            TrustedRpcServer(
                Dispatcher(_handlers([])), "127.0.0.1", 0, TLS.server_context()
            ) as srv,
            Worker(srv.url) as worker,
        ):
            with pytest.raises(WorkerRequestError, match="unknown shard 0x00"):
                await worker.mrenclave()
            with pytest.raises(WorkerRequestError, match="Method not found"):
                await worker.shard_vault()
            with pytest.raises(WorkerRequestError, match="not an RpcReturnValue"):
                await worker.name()

    _run(go())


def test_worker_unreachable_and_plain_urls() -> None:
    """A closed port is WorkerConnectionError; ws:// is refused (the trusted RPC is TLS)."""

    async def go() -> None:
        with pytest.raises(WorkerConnectionError, match="cannot connect"):
            await Worker("wss://127.0.0.1:1").open()

    _run(go())
    with pytest.raises(WorkerConnectionError, match="wss://"):
        Worker("ws://127.0.0.1:2000")
