"""The frame every emulator stands in: its state in memory behind one lock, read by
the injected clock, and where it is served.

An emulator's state (:class:`EmulatorState`) holds its config and its data; every
operation takes :attr:`EmulatorState.lock` for its whole read-check-write, so
concurrent calls see one order. The emulator (:class:`Emulator`) plays the
marketplace over that state and is served at ``base_url`` under ``prefix``.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from accrual.clock import Clock


class Config(Protocol):
    """An emulator's open choices; all may change at run time."""

    def describe(self) -> dict[str, Any]: ...


ConfigT = TypeVar("ConfigT", bound=Config)


class EmulatorState(Generic[ConfigT]):
    """All an emulator's data; hold ``lock`` while reading or changing it."""

    def __init__(self, clock: Clock, config: ConfigT) -> None:
        self.clock = clock
        self.config = config
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget everything but the config; each emulator's says what it holds."""
        raise NotImplementedError

    def now(self) -> datetime:
        return self.clock.now()


StateT = TypeVar("StateT", bound=EmulatorState[Any])


class Emulator(Generic[StateT, ConfigT]):
    """One emulated marketplace over its state, served at ``base_url`` + ``prefix``."""

    def __init__(self, state: StateT, base_url: str, prefix: str) -> None:
        self.state = state
        self.base_url = base_url.rstrip("/")
        self.prefix = prefix.rstrip("/")

    @property
    def clock(self) -> Clock:
        return self.state.clock

    @property
    def config(self) -> ConfigT:
        config: ConfigT = self.state.config
        return config

    @property
    def endpoint_url(self) -> str:
        """Where a seller's client points: the stand-in for the vendor's API host."""
        return self.base_url + self.prefix

    def describe(self) -> dict[str, Any]:
        """The emulator's open choices in force."""
        return self.config.describe()

    def reset(self) -> None:
        """Forget everything but the config."""
        self.state.reset()
