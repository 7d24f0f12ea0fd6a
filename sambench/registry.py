"""Name → object registries with close-match suggestions (the lm-evaluation-harness habit)."""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, Optional, TypeVar

from sambench.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of named entries of one kind (models, tasks, formats).

    ``register("name")`` is a decorator; ``alias("other", "name")`` adds another spelling.
    Lookups ignore case. ``get`` raises :class:`UnknownNameError` naming the closest known
    names (prefixes first, then close spellings, aliases included), so a typo on the command
    line gets a helpful one-line error.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}  # lower-case spelling -> entry name

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._entries and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = obj

    def alias(self, spelling: str, name: str) -> None:
        taken = self.canonical(spelling)
        if taken is not None and taken != name:
            raise ValueError(f"{self.kind} alias {spelling!r} of {name!r} is already {taken!r}")
        self._aliases[spelling.lower()] = name

    def aliases(self, name: str) -> list[str]:
        return sorted(a for a, n in self._aliases.items() if n == name)

    def canonical(self, name: str) -> Optional[str]:
        """The entry name that ``name`` spells (exactly, in another case, or as an alias)."""
        if name in self._entries:
            return name
        lowered = name.lower()
        return next((n for n in self._entries if n.lower() == lowered), None) or self._aliases.get(lowered)

    def get(self, name: str) -> T:
        key = self.canonical(name)
        if key is None:
            raise UnknownNameError(self.unknown_message(name))
        return self._entries[key]

    def unknown_message(self, name: str) -> str:
        spellings = {n.lower(): n for n in self._entries} | self._aliases
        lowered = name.lower()
        prefixed = [n for s, n in spellings.items() if s.startswith(lowered) or (len(s) > 2 and lowered.startswith(s))]
        similar = [spellings[s] for s in difflib.get_close_matches(lowered, list(spellings), n=3, cutoff=0.5)]
        close = list(dict.fromkeys(sorted(prefixed) + similar))[:3]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(sorted(self._entries)) or "none"
        return f"unknown {self.kind} {name!r}{hint} (known: {known})"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def items(self):
        return sorted(self._entries.items())
