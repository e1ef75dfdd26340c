"""Runtime metadata V14, generated from the pallet declarations.

Walks the `TypeInfo` of every call argument, event field, storage item and constant of the
runtime's pallets, builds the portable type registry (scale-info's `PortableRegistry`: ids are
positions, nominal types once each, structural ones deduplicated by shape), adds the outer
RuntimeCall / RuntimeEvent enums, the extrinsic description with its signed extensions, and
encodes the whole with scalecodec's own `MetadataVersioned` type, so the bytes are exactly what
scalecodec, substrate-interface and @polkadot/api expect from a Substrate node. scalecodec is
used here, and by tocw.primitives.metadata to parse the result into `Runtime.md`, once per
runtime configuration; the runtime's hot path never touches it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from scalecodec.base import RuntimeConfigurationObject
from scalecodec.type_registry import load_type_registry_preset

from tocw.chain.pallets.framework import PalletDef, RuntimeConfig, StorageItem, StorageMap
from tocw.chain.pallets.scaleinfo import (
    BYTES_T,
    U32_T,
    UNIT_T,
    CompactOf,
    Composite,
    Field,
    TupleOf,
    TypeInfo,
    VariantDef,
    VariantType,
)
from tocw.chain.pallets.substrate_types import (
    COMPACT_BALANCE_T,
    ERA_T,
    H256_T,
    MULTI_ADDRESS_T,
    MULTI_SIGNATURE_T,
    RUNTIME_CALL,
    RUNTIME_EVENT,
)
from tocw.primitives.metadata import SUPPORTED_EXTRINSIC_VERSION

METADATA_MAGIC = b"meta"
METADATA_VERSION = 14
RUNTIME_CRATE = "tocw_dev_runtime"

# --- the outer enums ----------------------------------------------------------------------------


def pallet_call_type(pallet: PalletDef) -> VariantType:
    return VariantType(
        [pallet.crate, "pallet", "Call"],
        [VariantDef(c.name, c.index, c.fields, c.docs) for c in pallet.calls],
        params=[(p, None) for p in pallet.type_params],
        docs=["Contains a variant per dispatchable extrinsic that this pallet has."],
    )


def pallet_event_type(pallet: PalletDef) -> VariantType:
    return VariantType(
        [pallet.crate, "pallet", "Event"],
        [VariantDef(e.name, e.index, e.fields, e.docs) for e in pallet.events],
        params=[(p, None) for p in pallet.type_params],
        docs=["The `Event` enum of this pallet"],
    )


def pallet_error_type(pallet: PalletDef) -> VariantType:
    return VariantType(
        [pallet.crate, "pallet", "Error"],
        [VariantDef(e.name, e.index, (), e.docs) for e in pallet.errors],
        params=[(p, None) for p in pallet.type_params],
        docs=["The `Error` enum of this pallet."],
    )


def runtime_call_type(pallets: Sequence[PalletDef], calls: dict[int, VariantType]) -> VariantType:
    return VariantType(
        [RUNTIME_CRATE, "RuntimeCall"],
        [
            VariantDef(
                pallets[i].name,
                i,
                (
                    Field(
                        None,
                        t,
                        "self::sp_api_hidden_includes_construct_runtime::hidden_include::dispatch"
                        f"::CallableCallFor<{pallets[i].name}, Runtime>",
                    ),
                ),
            )
            for i, t in calls.items()
        ],
    )


def runtime_event_type(pallets: Sequence[PalletDef], events: dict[int, VariantType]) -> VariantType:
    return VariantType(
        [RUNTIME_CRATE, "RuntimeEvent"],
        [
            VariantDef(pallets[i].name, i, (Field(None, t, f"{pallets[i].crate}::Event<Runtime>"),))
            for i, t in events.items()
        ],
    )


# --- signed extensions --------------------------------------------------------------------------


def _extension(module: str, name: str, fields: Sequence[Field] = ()) -> Composite:
    return Composite(["frame_system", "extensions", module, name], fields, params=[("T", None)])


SIGNED_EXTENSION_TYPES: tuple[tuple[str, TypeInfo, TypeInfo], ...] = (
    ("CheckNonZeroSender", _extension("check_non_zero_sender", "CheckNonZeroSender"), UNIT_T),
    ("CheckSpecVersion", _extension("check_spec_version", "CheckSpecVersion"), U32_T),
    ("CheckTxVersion", _extension("check_tx_version", "CheckTxVersion"), U32_T),
    ("CheckGenesis", _extension("check_genesis", "CheckGenesis"), H256_T),
    (
        "CheckMortality",
        _extension("check_mortality", "CheckMortality", [Field(None, ERA_T, "Era")]),
        H256_T,
    ),
    (
        "CheckNonce",
        _extension("check_nonce", "CheckNonce", [Field(None, CompactOf(U32_T), "T::Index")]),
        UNIT_T,
    ),
    ("CheckWeight", _extension("check_weight", "CheckWeight"), UNIT_T),
    (
        "ChargeTransactionPayment",
        Composite(
            ["pallet_transaction_payment", "ChargeTransactionPayment"],
            [Field(None, COMPACT_BALANCE_T, "BalanceOf<T>")],
            params=[("T", None)],
        ),
        UNIT_T,
    ),
)


def unchecked_extrinsic_type(runtime_call: TypeInfo) -> Composite:
    extra = TupleOf(*(ty for _, ty, _ in SIGNED_EXTENSION_TYPES))
    return Composite(
        ["sp_runtime", "generic", "unchecked_extrinsic", "UncheckedExtrinsic"],
        [Field(None, BYTES_T)],
        params=[
            ("Address", MULTI_ADDRESS_T),
            ("Call", runtime_call),
            ("Signature", MULTI_SIGNATURE_T),
            ("Extra", extra),
        ],
    )


# --- the registry -------------------------------------------------------------------------------


class PortableRegistry:
    """scale-info's registry: nominal types get an id when first seen (before their children,
    so recursive types such as RuntimeCall -> Sudo::Call -> RuntimeCall work); structural ones
    after their children, shared by every type of the same shape."""

    def __init__(self, resolve: dict[int, TypeInfo]) -> None:
        self._resolve = resolve
        self.entries: list[dict[str, Any] | None] = []
        self._by_object: dict[int, int] = {}
        self._by_shape: dict[str, int] = {}
        self._alive: list[TypeInfo] = []  # keeps every seen object alive: ids stay unique

    def id_of(self, ty: TypeInfo) -> int:
        ty = self._resolve.get(id(ty), ty)
        known = self._by_object.get(id(ty))
        if known is not None:
            return known
        self._alive.append(ty)
        if ty.structural:
            entry = self._entry(ty)
            shape = json.dumps(entry, sort_keys=True)
            index = self._by_shape.get(shape)
            if index is None:
                index = len(self.entries)
                self.entries.append(entry)
                self._by_shape[shape] = index
            self._by_object[id(ty)] = index
            return index
        index = len(self.entries)
        self.entries.append(None)
        self._by_object[id(ty)] = index
        self.entries[index] = self._entry(ty)
        return index

    def _entry(self, ty: TypeInfo) -> dict[str, Any]:
        return {
            "path": list(ty.path),
            "params": [
                {"name": name, "type": None if p is None else self.id_of(p)}
                for name, p in ty.params
            ],
            "def": ty.type_def(self.id_of),
            "docs": list(ty.docs),
        }

    def portable(self) -> list[dict[str, Any]]:
        return [{"id": i, "type": entry} for i, entry in enumerate(self.entries)]


def _storage_entry(item: StorageItem, reg: PortableRegistry) -> dict[str, Any]:
    if isinstance(item, StorageMap):
        kind: dict[str, Any] = {
            "Map": {
                "hashers": [item.hasher],
                "key": reg.id_of(item.key_ty),
                "value": reg.id_of(item.value_ty),
            }
        }
    else:
        kind = {"Plain": reg.id_of(item.value_ty)}
    return {
        "name": item.name,
        "modifier": "Optional" if item.is_optional else "Default",
        "type": kind,
        "default": "0x" + item.default_bytes().hex(),
        "documentation": list(item.docs),
    }


def metadata_v14(pallets: Sequence[PalletDef], config: RuntimeConfig) -> dict[str, Any]:
    """The MetadataV14 structure (as scalecodec's encoder takes it)."""
    call_types = {i: pallet_call_type(p) for i, p in enumerate(pallets) if p.calls}
    event_types = {i: pallet_event_type(p) for i, p in enumerate(pallets) if p.events}
    error_types = {i: pallet_error_type(p) for i, p in enumerate(pallets) if p.errors}
    runtime_call = runtime_call_type(pallets, call_types)
    runtime_event = runtime_event_type(pallets, event_types)
    reg = PortableRegistry({id(RUNTIME_CALL): runtime_call, id(RUNTIME_EVENT): runtime_event})
    reg.id_of(runtime_call)
    reg.id_of(runtime_event)
    pallet_entries = []
    for index, pallet in enumerate(pallets):
        pallet_entries.append(
            {
                "name": pallet.name,
                "storage": (
                    {
                        "prefix": pallet.name,
                        "entries": [_storage_entry(s, reg) for s in pallet.storage],
                    }
                    if pallet.storage
                    else None
                ),
                "calls": {"ty": reg.id_of(call_types[index])} if index in call_types else None,
                "event": {"ty": reg.id_of(event_types[index])} if index in event_types else None,
                "constants": [
                    {
                        "name": c.name,
                        "type": reg.id_of(c.ty),
                        "value": "0x" + c.encoded(config).hex(),
                        "documentation": list(c.docs),
                    }
                    for c in pallet.constants
                ],
                "error": {"ty": reg.id_of(error_types[index])} if index in error_types else None,
                "index": index,
            }
        )
    extrinsic = {
        "ty": reg.id_of(unchecked_extrinsic_type(runtime_call)),
        "version": SUPPORTED_EXTRINSIC_VERSION,
        "signed_extensions": [
            {
                "identifier": name,
                "ty": reg.id_of(ty),
                "additional_signed": reg.id_of(additional),
            }
            for name, ty, additional in SIGNED_EXTENSION_TYPES
        ],
    }
    runtime_type = reg.id_of(Composite([RUNTIME_CRATE, "Runtime"], []))
    return {
        "types": {"types": reg.portable()},
        "pallets": pallet_entries,
        "extrinsic": extrinsic,
        "runtime_type": runtime_type,
    }


def encode_metadata(pallets: Sequence[PalletDef], config: RuntimeConfig) -> bytes:
    """SCALE(MetadataVersioned): b"meta" ‖ 14 ‖ MetadataV14 (state_getMetadata's bytes)."""
    scale_config = RuntimeConfigurationObject()
    scale_config.update_type_registry(load_type_registry_preset("core"))
    obj = scale_config.create_scale_object("MetadataVersioned")
    encoded = obj.encode(["0x" + METADATA_MAGIC.hex(), {"V14": metadata_v14(pallets, config)}])
    return bytes(encoded.data)
