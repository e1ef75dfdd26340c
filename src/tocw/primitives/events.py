"""System.Events: the events of one block, decoded by the chain's metadata.

Owns `decode_events` (the storage value `Vec<EventRecord>` at
twox128("System") ++ twox128("Events")) and the receipt helpers built on it: which events an
extrinsic emitted (`events_of_extrinsic`) and whether it succeeded (`extrinsic_succeeded`,
which reads the System.ExtrinsicSuccess / System.ExtrinsicFailed event that FRAME emits for
every applied extrinsic). Clients wait for EnclaveBridge events this way, and the enclave
reads the block's events to learn which extrinsics actually dispatched.

Phases are typed (`ApplyExtrinsic(index)`, `Finalization`, `Initialization`); the index is the
extrinsic's position in the block body, inherents included.

Errors: a value that is not `Vec<EventRecord>` of this runtime raises ScaleDecodeError
(EventsDecodeError); a runtime without System.Events raises metadata.UnknownNameError.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from tocw.primitives.errors import ScaleDecodeError
from tocw.primitives.metadata import Event, RuntimeMetadata, Variant

SYSTEM = "System"
EXTRINSIC_SUCCESS = "ExtrinsicSuccess"
EXTRINSIC_FAILED = "ExtrinsicFailed"


class EventsDecodeError(ScaleDecodeError):
    """The bytes are not this runtime's System.Events value."""


@dataclass(frozen=True, slots=True)
class ApplyExtrinsic:
    index: int


@dataclass(frozen=True, slots=True)
class Finalization:
    pass


@dataclass(frozen=True, slots=True)
class Initialization:
    pass


Phase: TypeAlias = ApplyExtrinsic | Finalization | Initialization

_UNIT_PHASES: dict[str, Phase] = {
    "Finalization": Finalization(),
    "Initialization": Initialization(),
}


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event with the phase that emitted it; attributes as metadata.Event's."""

    phase: Phase
    pallet: str
    name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    topics: tuple[bytes, ...] = ()

    @property
    def event(self) -> Event:
        return Event(self.pallet, self.name, self.attributes)

    def is_event(self, pallet: str, name: str) -> bool:
        return self.pallet == pallet and self.name == name


def _phase(value: Any) -> Phase:
    if isinstance(value, Variant):
        if value.name == "ApplyExtrinsic" and isinstance(value.value, int):
            return ApplyExtrinsic(value.value)
        unit = _UNIT_PHASES.get(value.name)
        if unit is not None and value.value is None:
            return unit
    raise EventsDecodeError(f"unknown event phase {value!r}")


def decode_events(md: RuntimeMetadata, data: bytes | None) -> list[EventRecord]:
    """Decode the System.Events storage value; `None` (no value stored) is no events."""
    if data is None:
        return []
    try:
        raw = md.decode_storage(SYSTEM, "Events", bytes(data))
    except EventsDecodeError:
        raise
    except ScaleDecodeError as e:
        raise EventsDecodeError(f"malformed System.Events: {e}") from None
    if not isinstance(raw, list):
        raise EventsDecodeError("System.Events is not a sequence in this runtime")
    records = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("event"), Event):
            raise EventsDecodeError("System.Events items are not EventRecord{phase, event, ..}")
        event: Event = item["event"]
        topics = item.get("topics", [])
        records.append(
            EventRecord(
                phase=_phase(item.get("phase")),
                pallet=event.pallet,
                name=event.name,
                attributes=event.attributes,
                topics=tuple(topics) if isinstance(topics, list) else (),
            )
        )
    return records


def events_of_extrinsic(events: Iterable[EventRecord], index: int) -> list[EventRecord]:
    """The events emitted while applying the extrinsic at `index` of the block, in order."""
    target = ApplyExtrinsic(index)
    return [e for e in events if e.phase == target]


def extrinsic_succeeded(events: Iterable[EventRecord], index: int) -> bool | None:
    """True/False from System.ExtrinsicSuccess/ExtrinsicFailed; None if neither is there
    (the extrinsic is not in this block, or the events belong to another block)."""
    for e in events_of_extrinsic(events, index):
        if e.pallet == SYSTEM and e.name == EXTRINSIC_SUCCESS:
            return True
        if e.pallet == SYSTEM and e.name == EXTRINSIC_FAILED:
            return False
    return None


def find_events(events: Iterable[EventRecord], pallet: str, name: str) -> list[EventRecord]:
    """All events `pallet.name`, in block order."""
    return [e for e in events if e.pallet == pallet and e.name == name]


def dispatch_error(events: Iterable[EventRecord], index: int) -> Any:
    """The `dispatch_error` of the extrinsic's System.ExtrinsicFailed event, None if it has none."""
    for e in events_of_extrinsic(events, index):
        if e.pallet == SYSTEM and e.name == EXTRINSIC_FAILED:
            return e.attributes.get("dispatch_error", e.attributes.get("0"))
    return None


def describe_dispatch_error(md: RuntimeMetadata, error: Any) -> str:
    """A readable DispatchError: `Module(EnclaveBridge.ShardNotFound)`, `BadOrigin`, ...

    DispatchError::Module carries the pallet index and the error's variant index (its first
    byte in newer runtimes, where `error` is [u8; 4]); the names come from the metadata.
    """
    if isinstance(error, Variant):
        if error.name == "Module" and isinstance(error.value, dict):
            pallet_index = error.value.get("index")
            raw = error.value.get("error")
            error_index = raw[0] if isinstance(raw, bytes) and raw else raw
            if isinstance(pallet_index, int) and isinstance(error_index, int):
                try:
                    err = md.module_error(pallet_index, error_index)
                except LookupError:
                    return f"Module(pallet {pallet_index}, error {error_index})"
                return f"Module({err.pallet}.{err.name})"
        if error.value is None:
            return error.name
        inner = error.value.name if isinstance(error.value, Variant) else repr(error.value)
        return f"{error.name}({inner})"
    return repr(error)
