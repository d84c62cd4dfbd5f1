"""The architecture registry: one decorated function per model.

Each builder takes a :class:`DataSpec` (input shape, classes, kind, vocabulary size) so the same
name works on 8x8 digits, 28x28 MNIST or 32x32x3 CIFAR. Builders import Keras themselves: the
registry can list and validate names without loading TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from edge_infer.runtime.errors import UnknownNameError

from ..errors import IncompatibleError

MODES = ("supervised", "autoencoder", "gan")


@dataclass(frozen=True)
class DataSpec:
    """What a builder needs to know about the data."""

    input_shape: tuple[int, ...]
    num_classes: int
    kind: str
    task: str
    vocab_size: int | None = None

    @property
    def binary(self) -> bool:
        return self.task == "classification" and self.num_classes == 2


@dataclass(frozen=True)
class Architecture:
    """A registered model: builder, the data it accepts, and how it is trained."""

    name: str
    build: Callable[[DataSpec], Any]
    kinds: tuple[str, ...]
    tasks: tuple[str, ...]
    description: str
    mode: str = "supervised"
    preprocessing: str = ""
    epochs: int = 60  # defaults when the user gives none; early stopping usually ends sooner
    learning_rate: float = 1e-3
    dataset: str = "digits"  # the embedded data it trains on when none is named: runs offline

    def check(self, spec: DataSpec, dataset_name: str) -> None:
        """Refuse data that does not fit, before any training starts."""
        if spec.kind not in self.kinds:
            raise IncompatibleError(
                f"{self.name} takes {' or '.join(self.kinds)} data, but {dataset_name} is "
                f"{spec.kind} data (input {list(spec.input_shape)}); try "
                f"{', '.join(suggest(spec))}")
        if spec.task not in self.tasks:
            raise IncompatibleError(
                f"{self.name} is for {' or '.join(self.tasks)}, but {dataset_name} is a "
                f"{spec.task} dataset; try {', '.join(suggest(spec))}")
        if self.name in ("conv_autoencoder", "gan"):
            h, w = spec.input_shape[:2]
            if h % 4 or w % 4:
                raise IncompatibleError(f"{self.name} needs image sides divisible by 4, "
                                        f"{dataset_name} has {h}x{w}")


ARCHITECTURES: dict[str, Architecture] = {}


def register(name: str, *, kinds: tuple[str, ...], tasks: tuple[str, ...], description: str,
             mode: str = "supervised", preprocessing: str = "", epochs: int = 60,
             learning_rate: float = 1e-3, dataset: str = "digits"
             ) -> Callable[[Callable[[DataSpec], Any]], Callable[[DataSpec], Any]]:
    def wrap(fn: Callable[[DataSpec], Any]) -> Callable[[DataSpec], Any]:
        ARCHITECTURES[name] = Architecture(name, fn, kinds, tasks, description, mode,
                                           preprocessing, epochs, learning_rate, dataset)
        return fn
    return wrap


def get(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UnknownNameError("architecture", name, list(ARCHITECTURES)) from None


def suggest(spec: DataSpec) -> list[str]:
    return [a.name for a in ARCHITECTURES.values()
            if spec.kind in a.kinds and spec.task in a.tasks and a.mode == "supervised"] or \
        [a.name for a in ARCHITECTURES.values() if spec.kind in a.kinds]
