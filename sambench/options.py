"""Protocol options the paper leaves open: dataclass field metadata that says so, with where
the default comes from and the values ``sambench sensitivity`` tries (docs/protocols.md)."""
from __future__ import annotations

from dataclasses import field, fields


def open_choice(default, source: str, values: list):
    """A protocol field the paper leaves open: its default, where that default comes from, and
    the values ``sambench sensitivity`` tries (dataclass field metadata ``open``)."""
    factory = (lambda: list(default)) if isinstance(default, list) else None
    meta = {"open": True, "source": source, "values": list(values)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def open_choices(protocol) -> dict[str, dict]:
    """The open choices of a protocol dataclass (class or instance): name -> {source, values}."""
    return {f.name: {"source": f.metadata["source"], "values": list(f.metadata["values"])}
            for f in fields(protocol) if f.metadata.get("open")}
