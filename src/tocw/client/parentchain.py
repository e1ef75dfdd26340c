"""The client's view of the parentchain: accounts, transfers, invocations and the events that
tell a client its trusted call was processed.

Owns `Parentchain`, a small typed layer over tocw.parentchain.ParentchainClient for what a client
does (PROTOCOL.md "Parentchain pallets"): read an account, transfer, send
`EnclaveBridge.invoke` and `shield_funds`, list the Teerex registry, and wait (bounded) for an
event such as `ProcessedParentchainBlock` for the block that included a call. Calls are composed
by pallet and call name through the chain's metadata, so this works against any node with the
Teerex and EnclaveBridge pallets. Every failure is a ClientError (errors.py).

Submissions wait until the extrinsic's block is FINALIZED: workers import only finalized blocks,
and `ProcessedParentchainBlock` names the finalized block, so waiting for inclusion alone would
race a reorganisation on a real chain. Events are scanned block by block from the inclusion
block on, driven by the finalized-head subscription, so an event that happened before the wait
began is still found.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from tocw.client.amounts import Token
from tocw.client.errors import (
    ClientError,
    ClientTimeoutError,
    ExtrinsicFailedError,
    NodeConnectionError,
    NodeError,
)
from tocw.parentchain.client import ParentchainClient
from tocw.parentchain.errors import (
    ExtrinsicRejectedError,
    ExtrinsicWatchError,
    ParentchainConnectionError,
    ParentchainError,
    ParentchainTimeoutError,
)
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.events import (
    EventRecord,
    decode_events,
    describe_dispatch_error,
    dispatch_error,
    events_of_extrinsic,
    extrinsic_succeeded,
)
from tocw.primitives.extrinsic import extrinsic_hash
from tocw.primitives.keys import Keypair
from tocw.primitives.metadata import RuntimeMetadata, Variant
from tocw.primitives.trusted import Request
from tocw.primitives.types import AccountId, Balance, BlockHash, BlockNumber, ShardId, to_hex

DEFAULT_NODE_URL: Final = "ws://127.0.0.1:9944"
DEFAULT_TIMEOUT: Final = 30.0  # one RPC call
DEFAULT_WAIT: Final = 120.0  # an inclusion, or a worker's processing
KEYS_PAGE: Final = 256
TEEREX: Final = "Teerex"
ENCLAVE_BRIDGE: Final = "EnclaveBridge"
# Balances calls that move free funds, in the order preferred (Integritee's CLI uses `transfer`,
# renamed transfer_allow_death in later Substrate).
TRANSFER_CALLS: Final = ("transfer_allow_death", "transfer", "transfer_keep_alive")

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """System.Account of one account."""

    nonce: int
    free: Balance
    reserved: Balance
    frozen: Balance


@dataclass(frozen=True, slots=True)
class Inclusion:
    """Where a submitted extrinsic landed (a finalized block) and the events it emitted."""

    block_hash: BlockHash
    block_number: BlockNumber
    extrinsic_index: int
    events: tuple[EventRecord, ...]


@dataclass(frozen=True, slots=True)
class FoundEvent:
    """An event found by `wait_for_event`, with the block it is in."""

    record: EventRecord
    block_hash: BlockHash
    block_number: BlockNumber


@dataclass(frozen=True, slots=True)
class ProcessedBlock:
    """A worker's `ProcessedParentchainBlock` confirmation of one parentchain block."""

    shard: ShardId
    block_hash: BlockHash  # the processed block
    block_number: BlockNumber
    trusted_calls_merkle_root: bytes
    confirmed_in: BlockHash  # the block holding the confirmation
    confirmed_in_number: BlockNumber


@dataclass(frozen=True, slots=True)
class RegisteredWorker:
    """One entry of the Teerex registry (SovereignEnclaves)."""

    account: AccountId
    mrenclave: bytes
    url: str | None
    timestamp_ms: int
    attestation_method: str

    @property
    def registered_at(self) -> str:
        """The attestation time as ISO 8601 UTC."""
        moment = datetime.datetime.fromtimestamp(self.timestamp_ms / 1000, datetime.UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def client_error(what: str, error: ParentchainError | PrimitivesError) -> ClientError:
    """The ClientError for an error of the layers below, with `what` the client was doing."""
    if isinstance(error, ExtrinsicRejectedError):
        return NodeError(f"{what}: the node refused the extrinsic: {error.message}")
    if isinstance(error, ParentchainTimeoutError):
        return NodeConnectionError(f"{what}: the node did not answer in time ({error})")
    if isinstance(error, ParentchainConnectionError):
        return NodeConnectionError(f"{what}: {error}")
    return NodeError(f"{what}: {error}")


@contextlib.contextmanager
def node_errors(what: str) -> Iterator[None]:
    """tocw.parentchain's and tocw.primitives' errors as ClientErrors."""
    try:
        yield
    except (ParentchainError, PrimitivesError) as e:
        raise client_error(what, e) from None


class Parentchain:
    """A client of one parentchain node.

    `async with Parentchain(url) as chain:` connects on entry (or `await
    Parentchain.connect(url)`); `Parentchain(client=...)` wraps an open ParentchainClient.
    """

    def __init__(
        self,
        url: str = DEFAULT_NODE_URL,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        client: ParentchainClient | None = None,
    ) -> None:
        self._url = client.url if client is not None else url
        self._timeout = timeout
        self._client = client
        self._token: Token | None = None

    @classmethod
    async def connect(
        cls, url: str = DEFAULT_NODE_URL, *, timeout: float = DEFAULT_TIMEOUT
    ) -> Parentchain:
        chain = cls(url, timeout=timeout)
        await chain.open()
        return chain

    async def open(self) -> None:
        if self._client is not None:
            return
        with node_errors(f"cannot reach the parentchain node at {self._url}"):
            self._client = await ParentchainClient.connect(
                self._url, timeout=self._timeout, open_timeout=self._timeout, ping_interval=None
            )

    @property
    def client(self) -> ParentchainClient:
        """The open connection (NodeConnectionError before `open`)."""
        if self._client is None:
            raise NodeConnectionError(
                f"not connected to {self._url}: use `async with Parentchain(url)`"
            )
        return self._client

    @property
    def url(self) -> str:
        return self._url

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def __aenter__(self) -> Parentchain:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- chain facts --

    async def metadata(self) -> RuntimeMetadata:
        with node_errors("reading the chain's metadata"):
            return await self.client.metadata()

    async def token(self) -> Token:
        """The native token (symbol, decimals) from system_properties."""
        if self._token is None:
            with node_errors("system_properties"):
                props = await self.client.call("system_properties")
            self._token = Token.from_properties(props if isinstance(props, dict) else None)
        return self._token

    async def chain_name(self) -> str:
        with node_errors("system_chain"):
            return await self.client.chain_name()

    async def finalized_number(self) -> BlockNumber:
        with node_errors("reading the finalized head"):
            return (await self.client.finalized_header()).number

    # -- accounts --

    async def account_info(self, account: AccountId) -> AccountInfo:
        """System.Account at the best block (zeros for an account that does not exist)."""
        md = await self.metadata()
        with node_errors("reading System.Account"):
            raw = await self.client.storage(md.storage_key("System", "Account", bytes(account)))
            value = md.decode_storage("System", "Account", raw)
        data = value.get("data", {}) if isinstance(value, dict) else {}
        frozen = data.get("frozen", data.get("misc_frozen", 0))
        return AccountInfo(
            nonce=int(value.get("nonce", 0)) if isinstance(value, dict) else 0,
            free=Balance(int(data.get("free", 0))),
            reserved=Balance(int(data.get("reserved", 0))),
            frozen=Balance(int(frozen or 0)),
        )

    async def free_balance(self, account: AccountId) -> Balance:
        return (await self.account_info(account)).free

    # -- submitting --

    async def submit(
        self,
        signer: Keypair,
        pallet: str,
        call: str,
        args: dict[str, Any],
        *,
        timeout: float = DEFAULT_WAIT,
    ) -> Inclusion:
        """Sign `pallet.call(**args)`, submit it, wait until its block is finalized and check
        that it succeeded there; ExtrinsicFailedError with the DispatchError otherwise."""
        what = f"{pallet}.{call}"
        md = await self.metadata()
        with node_errors(what):
            encoded = md.encode_call(pallet, call, args)
            xt = await self.client.sign(encoded, signer)
        try:
            async with await self.client.submit_and_watch(xt) as watch:
                status = await watch.wait_for("finalized", timeout)
        except ParentchainTimeoutError:
            raise ClientTimeoutError(f"{what} was not finalized within {timeout:g} s") from None
        except ExtrinsicWatchError as e:
            raise NodeError(f"{what} was not included: {e}") from None
        except ParentchainError as e:
            raise client_error(what, e) from None
        assert status.block_hash is not None
        return await self._inclusion(xt, status.block_hash, what)

    async def _inclusion(self, xt: bytes, block_hash: BlockHash, what: str) -> Inclusion:
        md = await self.metadata()
        with node_errors(f"reading the block of {what}"):
            block = await self.client.block(block_hash)
            events = decode_events(md, await self.client.events_raw(block_hash))
        wanted = extrinsic_hash(xt)
        index = next(
            (i for i, x in enumerate(block.block.extrinsics) if extrinsic_hash(x) == wanted), None
        )
        if index is None:
            raise NodeError(f"{what}: not found in its block {to_hex(block_hash)}")
        if extrinsic_succeeded(events, index) is False:
            reason = describe_dispatch_error(md, dispatch_error(events, index))
            raise ExtrinsicFailedError(what, reason, block_hash)
        mine = tuple(events_of_extrinsic(events, index))
        return Inclusion(block_hash, block.block.header.number, index, mine)

    async def transfer(
        self, signer: Keypair, dest: AccountId, value: int, *, timeout: float = DEFAULT_WAIT
    ) -> Inclusion:
        """Balances transfer of `value` base units from `signer` to `dest`."""
        md = await self.metadata()
        name = next((n for n in TRANSFER_CALLS if md.has_call("Balances", n)), None)
        if name is None:
            raise NodeError("the chain's Balances pallet has no transfer call")
        args = {"dest": Variant("Id", bytes(dest)), "value": int(value)}
        return await self.submit(signer, "Balances", name, args, timeout=timeout)

    async def send_invoke(
        self, signer: Keypair, request: Request, *, timeout: float = DEFAULT_WAIT
    ) -> Inclusion:
        """EnclaveBridge.invoke(request): hand an encrypted trusted call to the shard."""
        args = {"request": {"shard": bytes(request.shard), "cyphertext": request.cyphertext}}
        return await self.submit(signer, ENCLAVE_BRIDGE, "invoke", args, timeout=timeout)

    async def shield_funds(
        self,
        signer: Keypair,
        shard: ShardId,
        encrypted_beneficiary: bytes,
        amount: int,
        *,
        timeout: float = DEFAULT_WAIT,
    ) -> Inclusion:
        """EnclaveBridge.shield_funds: move `amount` into the shard's vault for the incognito
        account encrypted to the shard's shielding key."""
        args = {
            "shard": bytes(shard),
            "incognito_account_encrypted": bytes(encrypted_beneficiary),
            "amount": int(amount),
        }
        return await self.submit(signer, ENCLAVE_BRIDGE, "shield_funds", args, timeout=timeout)

    # -- the Teerex registry --

    async def workers(self) -> list[RegisteredWorker]:
        """Teerex.SovereignEnclaves at the finalized block, oldest attestation first."""
        md = await self.metadata()
        with node_errors("reading the Teerex registry"):
            if not md.has_pallet(TEEREX):
                raise NodeError(f"the chain at {self.url} has no Teerex pallet")
            at = await self.client.finalized_head()
            prefix = md.storage_key(TEEREX, "SovereignEnclaves")
            keys = await self._keys(prefix, at)
            values = await self.client.storage_many(keys, at)
            found = []
            for key in keys:
                (account,) = md.decode_storage_key(TEEREX, "SovereignEnclaves", key)
                value = md.decode_storage(TEEREX, "SovereignEnclaves", values.get(key))
                entry = _registered(AccountId(bytes(account)), value)
                if entry is not None:
                    found.append(entry)
        return sorted(found, key=lambda w: (w.timestamp_ms, bytes(w.account)))

    async def _keys(self, prefix: bytes, at: bytes) -> list[bytes]:
        keys: list[bytes] = []
        start: str | None = None
        while True:
            page = await self.client.call(
                "state_getKeysPaged", [to_hex(prefix), KEYS_PAGE, start, to_hex(at)]
            )
            if not isinstance(page, list):
                raise NodeError("state_getKeysPaged did not answer a list")
            keys.extend(bytes.fromhex(str(k)[2:]) for k in page)
            if len(page) < KEYS_PAGE:
                return keys
            start = str(page[-1])

    async def dcap_collateral(self, fmspc: bytes) -> bytes | None:
        """Teerex.SgxDcapCollateral[fmspc] (tocw): the collateral JSON the chain verified DCAP
        registrations with, None when the chain has none for that platform."""
        md = await self.metadata()
        with node_errors("reading Teerex.SgxDcapCollateral"):
            try:
                key = md.storage_key(TEEREX, "SgxDcapCollateral", bytes(fmspc))
            except PrimitivesError:
                return None
            value = md.decode_storage(TEEREX, "SgxDcapCollateral", await self.client.storage(key))
        return bytes(value) if isinstance(value, bytes | bytearray) and value else None

    # -- events --

    async def events(self, block_hash: BlockHash) -> list[EventRecord]:
        with node_errors("reading events"):
            return await self.client.events(block_hash)

    async def finalized_blocks(self, since: int | None = None) -> AsyncGenerator[BlockNumber, None]:
        """Finalized block numbers from `since` (default: the current head) on, each once and
        in order, for as long as the caller iterates."""
        with node_errors("subscribing to finalized heads"):
            heads = await self.client.subscribe_finalized_heads()
        try:
            next_number = since
            while True:
                with node_errors("following finalized heads"):
                    head = (await heads.next(None)).number
                if next_number is None:
                    next_number = head
                while next_number <= head:
                    yield BlockNumber(next_number)
                    next_number += 1
        finally:
            with contextlib.suppress(ClientError, ParentchainError):
                await heads.close()

    async def block_hash(self, number: int) -> BlockHash:
        with node_errors(f"reading the hash of block #{number}"):
            return await self.client.block_hash(number)

    async def wait_for_event(
        self,
        match: Callable[[EventRecord], bool],
        *,
        since: int,
        timeout: float = DEFAULT_WAIT,
        what: str = "the event",
        progress: Progress | None = None,
    ) -> FoundEvent:
        """The first event for which `match` holds, in finalized blocks from `since` on;
        ClientTimeoutError after `timeout` seconds."""
        last_seen: int | None = None
        try:
            async with asyncio.timeout(timeout):
                async with contextlib.aclosing(self.finalized_blocks(since)) as blocks:
                    async for number in blocks:
                        block_hash = await self.block_hash(number)
                        for record in await self.events(block_hash):
                            if match(record):
                                return FoundEvent(record, block_hash, number)
                        last_seen = number
                        if progress is not None:
                            progress(f"waiting for {what} (finalized #{number})")
        except TimeoutError:
            seen = f"; scanned up to finalized #{last_seen}" if last_seen is not None else ""
            raise ClientTimeoutError(
                f"timed out after {timeout:g} s waiting for {what}{seen}"
            ) from None
        raise NodeError(f"the finalized-head subscription ended while waiting for {what}")

    async def wait_for_processed(
        self,
        block_hash: BlockHash,
        *,
        shard: ShardId | None = None,
        since: int | None = None,
        timeout: float = DEFAULT_WAIT,
        progress: Progress | None = None,
    ) -> ProcessedBlock:
        """Wait until a worker (of `shard`, when given) confirms it processed `block_hash`
        (EnclaveBridge.ProcessedParentchainBlock). `since` is that block's number (looked up
        when not given): the confirmation is searched from there on."""
        if since is None:
            with node_errors(f"reading the header of {to_hex(block_hash)}"):
                since = (await self.client.header(block_hash)).number

        def match(record: EventRecord) -> bool:
            attrs = record.attributes
            return (
                record.pallet == ENCLAVE_BRIDGE
                and record.name == "ProcessedParentchainBlock"
                and bytes(attrs.get("block_hash", b"")) == bytes(block_hash)
                and (shard is None or bytes(attrs.get("shard", b"")) == bytes(shard))
            )

        found = await self.wait_for_event(
            match,
            since=since,
            timeout=timeout,
            what=f"a worker to process block #{since}",
            progress=progress,
        )
        attrs = found.record.attributes
        return ProcessedBlock(
            shard=ShardId(bytes(attrs.get("shard", b""))),
            block_hash=block_hash,
            block_number=BlockNumber(int(attrs.get("block_number", since))),
            trusted_calls_merkle_root=bytes(attrs.get("trusted_calls_merkle_root", b"")),
            confirmed_in=found.block_hash,
            confirmed_in_number=found.block_number,
        )


def _registered(account: AccountId, value: Any) -> RegisteredWorker | None:
    """A SovereignEnclaves value (MultiEnclave::Sgx(SgxEnclave)) as a RegisteredWorker."""
    if isinstance(value, Variant):
        value = value.value
    if not isinstance(value, dict):
        return None
    url = value.get("url")
    method = value.get("attestation_method")
    if isinstance(method, Variant):
        method_name = method.name
        if isinstance(method.value, dict) and method.value.get("proxied"):
            method_name += " (proxied)"
    else:
        method_name = str(method)
    return RegisteredWorker(
        account=account,
        mrenclave=bytes(value.get("mr_enclave", b"")),
        url=url.decode("utf-8", "replace") if isinstance(url, bytes | bytearray) else None,
        timestamp_ms=int(value.get("timestamp", 0)),
        attestation_method=method_name,
    )
