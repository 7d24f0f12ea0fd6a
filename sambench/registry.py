"""Name → object registries with close-match suggestions (the lm-evaluation-harness habit)."""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from sambench.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of named entries of one kind (models, tasks, formats).

    ``register("name")`` is a decorator; ``get`` raises :class:`UnknownNameError` naming the
    closest known names, so a typo on the command line gets a helpful one-line error.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._entries and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(sorted(self._entries)) or "none"
        return f"unknown {self.kind} {name!r}{hint} (known: {known})"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def items(self):
        return sorted(self._entries.items())
