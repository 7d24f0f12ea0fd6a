"""Name → object registries, lazy, with close-match suggestions (the lm-evaluation-harness habit).

Every pluggable part (models, task runners, dataset formats, text encoders, report sections) is
one line beside its registry, ``RUNNERS.register("point", "sambench.tasks.point:PointTask",
"description")``. The target is imported when the name is first used, so listing names imports
nothing and an optional dependency is needed only by the part that uses it.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Generic, Iterator, Optional, TypeVar

from sambench.errors import SambenchError, UnknownNameError

T = TypeVar("T")


def split_spec(spec: str) -> tuple[str, Optional[str]]:
    """A ``NAME[:ARG]`` spec of the command line: ``"sam:ckpt.pth"`` → ``("sam", "ckpt.pth")``,
    ``"grabcut"`` → ``("grabcut", None)``."""
    name, _, arg = spec.partition(":")
    return name, (arg or None)


class Registry(Generic[T]):
    """Named entries of one kind. ``alias("other", "name")`` adds another spelling and lookups
    ignore case; ``get`` raises :class:`UnknownNameError` naming the closest known names
    (prefixes first, then close spellings, aliases included), so a typo on the command line
    gets a helpful one-line error."""

    def __init__(self, kind: str):
        self.kind = kind
        self._targets: dict[str, str] = {}
        self._loaded: dict[str, T] = {}
        self._aliases: dict[str, str] = {}  # lower-case spelling -> entry name
        self.descriptions: dict[str, str] = {}

    def register(self, name: str, target: str, description: str = "") -> None:
        """Register ``target`` (``"module:attr"``) under ``name``."""
        if ":" not in target:
            raise ValueError(f"{self.kind} {name!r}: target {target!r} is not 'module:attr'")
        if self._targets.get(name, target) != target or (name in self._loaded and name not in self._targets):
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._targets[name] = target
        self.descriptions[name] = description

    def add(self, name: str, obj: T, description: str = "") -> None:
        """Register an object that already exists (e.g. a file found at run time)."""
        if name in self._targets or self._loaded.get(name, obj) is not obj:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._loaded[name] = obj
        self.descriptions[name] = description

    def alias(self, spelling: str, name: str) -> None:
        taken = self.canonical(spelling)
        if taken is not None and taken != name:
            raise ValueError(f"{self.kind} alias {spelling!r} of {name!r} is already {taken!r}")
        self._aliases[spelling.lower()] = name

    def aliases(self, name: str) -> list[str]:
        return sorted(a for a, n in self._aliases.items() if n == name)

    def canonical(self, name: str) -> Optional[str]:
        """The entry name that ``name`` spells (exactly, in another case, or as an alias)."""
        if name in self._targets or name in self._loaded:
            return name
        lowered = name.lower()
        return next((n for n in self if n.lower() == lowered), None) or self._aliases.get(lowered)

    def get(self, name: str) -> T:
        key = self.canonical(name)
        if key is None:
            raise UnknownNameError(self.unknown_message(name))
        if key not in self._loaded:
            module, _, attr = self._targets[key].partition(":")
            try:
                self._loaded[key] = getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as exc:
                if exc.name and module.startswith(exc.name):
                    raise
                raise SambenchError(f"{self.kind} {key} needs the package {exc.name!r}, which is not "
                                    "installed (see README: optional extras)") from None
        return self._loaded[key]

    def unknown_message(self, name: str) -> str:
        spellings = {n.lower(): n for n in self} | self._aliases
        lowered = name.lower()
        prefixed = [n for s, n in spellings.items() if s.startswith(lowered) or (len(s) > 2 and lowered.startswith(s))]
        similar = [spellings[s] for s in difflib.get_close_matches(lowered, list(spellings), n=3, cutoff=0.5)]
        close = list(dict.fromkeys(sorted(prefixed) + similar))[:3]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(self) or "none"
        return f"unknown {self.kind} {name!r}{hint} (known: {known})"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({*self._targets, *self._loaded}))

    def items(self) -> list[tuple[str, T]]:
        return [(name, self.get(name)) for name in self]
