"""System.Events decoding and receipts, with the dev chain's metadata and a real dev block.

Event records are encoded with the metadata's own codecs and cross-checked against
scalecodec's decoding of the same bytes; one test runs the dev chain in-process (no sockets),
includes an EnclaveBridge.invoke and a failing transfer, and decodes the block's real events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset

from tocw.chain.node import Chain
from tocw.chain.runtime import Runtime, RuntimeConfig
from tocw.chain.storage import ChainStore
from tocw.primitives.events import (
    ApplyExtrinsic,
    EventRecord,
    EventsDecodeError,
    Finalization,
    Initialization,
    decode_events,
    describe_dispatch_error,
    dispatch_error,
    events_of_extrinsic,
    extrinsic_succeeded,
    find_events,
)
from tocw.primitives.extrinsic import build_signed_extrinsic, decode_extrinsic
from tocw.primitives.hashing import storage_prefix
from tocw.primitives.keys import Keypair
from tocw.primitives.metadata import Event, RuntimeMetadata, UnknownNameError, Variant

ALICE = Keypair.from_uri("//Alice")
BOB = Keypair.from_uri("//Bob")
SHARD = bytes(range(32))
EVENTS_KEY = storage_prefix("System", "Events")

MD = RuntimeMetadata.from_bytes(Runtime(RuntimeConfig()).metadata())
EVENTS_TYPE = MD.storage("System", "Events").value_type_id


def _default_dispatch_info() -> Any:
    """A DispatchInfo value of the dev runtime's shape, zeros everywhere."""
    field = MD.event("System", "ExtrinsicSuccess").fields[0]
    return MD.decode(field.type_id, _zero_encoding(field.type_id))


def _zero_encoding(type_id: int) -> bytes:
    # The smallest valid encoding: decode from plenty of zero bytes and re-encode.
    value, _ = MD.codec_for(type_id).decode_prefix(bytes(64))
    return MD.encode(type_id, value)


def record(phase: Any, event: Event, topics: list[bytes] | None = None) -> dict[str, Any]:
    return {"phase": phase, "event": event, "topics": topics or []}


def sample_records() -> list[dict[str, Any]]:
    info = _default_dispatch_info()
    module_error = Variant(
        "Module", {"index": MD.pallet_index("Balances"), "error": bytes([2, 0, 0, 0])}
    )
    return [
        record(
            Variant("Initialization"), Event("System", "NewAccount", {"account": BOB.public_key})
        ),
        record(
            Variant("ApplyExtrinsic", 0),
            Event("System", "ExtrinsicSuccess", {"dispatch_info": info}),
        ),
        record(
            Variant("ApplyExtrinsic", 1),
            Event("EnclaveBridge", "IndirectInvocationRegistered", {"0": SHARD}),
            [bytes(32)],
        ),
        record(
            Variant("ApplyExtrinsic", 1),
            Event("System", "ExtrinsicSuccess", {"dispatch_info": info}),
        ),
        record(
            Variant("ApplyExtrinsic", 2),
            Event(
                "System", "ExtrinsicFailed", {"dispatch_error": module_error, "dispatch_info": info}
            ),
        ),
        record(
            Variant("Finalization"),
            Event("System", "Remarked", {"sender": ALICE.public_key, "hash": bytes(32)}),
        ),
    ]


def test_events_decode_typed_phases_and_attributes() -> None:
    """Records decode into typed phases, pallet/name and attributes by field name."""
    events = decode_events(MD, MD.encode(EVENTS_TYPE, sample_records()))
    assert [e.phase for e in events] == [
        Initialization(),
        ApplyExtrinsic(0),
        ApplyExtrinsic(1),
        ApplyExtrinsic(1),
        ApplyExtrinsic(2),
        Finalization(),
    ]
    bridge = events[2]
    assert (bridge.pallet, bridge.name) == ("EnclaveBridge", "IndirectInvocationRegistered")
    assert bridge.attributes == {"0": SHARD} and bridge.topics == (bytes(32),)
    assert bridge.event == Event("EnclaveBridge", "IndirectInvocationRegistered", {"0": SHARD})
    assert events[0].attributes == {"account": BOB.public_key}


def test_events_receipt_helpers_follow_apply_extrinsic_index() -> None:
    """Success, failure and 'not in this block' come from System events of each index."""
    events = decode_events(MD, MD.encode(EVENTS_TYPE, sample_records()))
    assert extrinsic_succeeded(events, 0) is True
    assert extrinsic_succeeded(events, 1) is True
    assert extrinsic_succeeded(events, 2) is False
    assert extrinsic_succeeded(events, 3) is None
    assert [e.name for e in events_of_extrinsic(events, 1)] == [
        "IndirectInvocationRegistered",
        "ExtrinsicSuccess",
    ]
    assert len(find_events(events, "System", "ExtrinsicSuccess")) == 2
    assert dispatch_error(events, 0) is None
    error = dispatch_error(events, 2)
    assert isinstance(error, Variant) and error.name == "Module"
    name = MD.module_error(MD.pallet_index("Balances"), 2).name
    assert describe_dispatch_error(MD, error) == f"Module(Balances.{name})"
    assert describe_dispatch_error(MD, Variant("BadOrigin")) == "BadOrigin"


def test_events_match_scalecodec_decoding() -> None:
    """scalecodec reads the same bytes to the same phases, modules, events and attributes."""
    data = MD.encode(EVENTS_TYPE, sample_records())
    config = RuntimeConfigurationObject(ss58_format=42)
    config.update_type_registry(load_type_registry_preset("core"))
    metadata = config.create_scale_object("MetadataVersioned", data=ScaleBytes(MD.to_bytes()))
    metadata.decode()
    config.add_portable_registry(metadata)
    obj = config.create_scale_object(
        f"scale_info::{EVENTS_TYPE}", data=ScaleBytes(data), metadata=metadata
    )
    ref = obj.decode()
    ours = decode_events(MD, data)
    assert len(ref) == len(ours)
    for r, e in zip(ref, ours, strict=True):
        assert (r["module_id"], r["event_id"]) == (e.pallet, e.name)
        assert r["phase"] == type(e.phase).__name__
        index = e.phase.index if isinstance(e.phase, ApplyExtrinsic) else None
        assert r["extrinsic_idx"] == index
        assert r["topics"] == ["0x" + t.hex() for t in e.topics]
    assert ref[2]["attributes"] == "0x" + SHARD.hex()
    balances = MD.pallet_index("Balances")
    assert ref[4]["attributes"]["dispatch_error"] == {
        "Module": {"index": balances, "error": "0x02000000"}
    }
    assert ours[4].attributes["dispatch_error"] == Variant(
        "Module", {"index": balances, "error": bytes([2, 0, 0, 0])}
    )


def test_events_absent_value_is_no_events() -> None:
    """A block with no System.Events value (None from the node) has no events."""
    assert decode_events(MD, None) == []
    assert decode_events(MD, b"\x00") == []


def test_events_garbage_raises_typed_error() -> None:
    """Truncated or foreign bytes raise EventsDecodeError (a ScaleDecodeError)."""
    data = MD.encode(EVENTS_TYPE, sample_records())
    for bad in (data[:-1], data + b"\x00", b"\x04\x07", b"\x04\x00\x00\x00\x00\x00\xff\xff"):
        with pytest.raises(EventsDecodeError):
            decode_events(MD, bad)


def test_events_runtime_without_system_events_is_unknown_name() -> None:
    """Metadata without System.Events cannot decode events and says so."""
    pallets = [p for p in MD.pallets if p.name != "System"]
    md = RuntimeMetadata(MD.types, pallets, MD.extrinsic, MD.runtime_type_id)
    with pytest.raises(UnknownNameError):
        decode_events(md, b"\x00")


def test_events_of_a_real_dev_block(tmp_path: Path) -> None:
    """In a dev block, invoke succeeds with IndirectInvocationRegistered; an overdraft fails."""
    runtime = Runtime(RuntimeConfig())
    store = ChainStore(tmp_path / "chain.sqlite", state_version=runtime.version.state_version)
    chain = Chain(runtime, store)
    try:
        chain.open()
        md = RuntimeMetadata.from_bytes(runtime.metadata())

        def sign(call: bytes, signer: Keypair, nonce: int) -> bytes:
            return build_signed_extrinsic(
                md,
                call,
                signer,
                nonce=nonce,
                genesis_hash=chain.genesis_hash,
                spec_version=runtime.version.spec_version,
                transaction_version=runtime.version.transaction_version,
            )

        invoke = md.encode_call(
            "EnclaveBridge", "invoke", {"request": {"shard": SHARD, "cyphertext": bytes(384)}}
        )
        too_much = md.encode_call(
            "Balances",
            "transfer",
            {"dest": Variant("Id", ALICE.public_key), "value": 2**127},
        )
        chain.submit(sign(invoke, ALICE, 0))
        chain.submit(sign(too_much, BOB, 0))
        block = chain.produce_block(1_700_000_000_000).block
        events = decode_events(md, chain.state(block.hash).get(EVENTS_KEY))
        decoded = [decode_extrinsic(md, xt) for xt in block.extrinsics]
        index = {(x.call.pallet, x.call.name): i for i, x in enumerate(decoded)}
        i_invoke = index[("EnclaveBridge", "invoke")]
        i_transfer = index[("Balances", "transfer")]
        assert extrinsic_succeeded(events, i_invoke) is True
        assert extrinsic_succeeded(events, i_transfer) is False
        registered = [
            e for e in events_of_extrinsic(events, i_invoke) if e.pallet == "EnclaveBridge"
        ]
        assert registered and registered[0].attributes == {"0": SHARD}
        assert describe_dispatch_error(md, dispatch_error(events, i_transfer)).startswith(
            "Module(Balances."
        )
        for i, x in enumerate(decoded):
            if not x.signed:  # inherents (Timestamp.set) succeed too
                assert extrinsic_succeeded(events, i) is True
    finally:
        store.close()


def test_events_record_exposes_event() -> None:
    """EventRecord.is_event and .event give the pallet/name view used by receipts."""
    rec = EventRecord(ApplyExtrinsic(0), "System", "ExtrinsicSuccess", {})
    assert rec.is_event("System", "ExtrinsicSuccess") and not rec.is_event("System", "Nope")
