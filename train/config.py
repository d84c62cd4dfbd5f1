"""Typed training configuration, validated before anything heavy is imported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_infer.runtime.errors import UsageError

STRATEGIES = ("default", "mirrored", "multi-worker")


def progress_verbosity(quiet: bool) -> int:
    """Keras ``verbose``: 0 when quiet, the live bar on a terminal, one line per epoch when
    the output goes to a file or a CI log (the bar would write every redraw there)."""
    import sys

    if quiet:
        return 0
    return 1 if sys.stdout.isatty() and sys.stderr.isatty() else 2


@dataclass(frozen=True)
class TrainConfig:
    """Everything one ``edge-infer train`` run needs."""

    architecture: str
    dataset: str | None = None  # None: the architecture's embedded dataset (digits, waves, sine)
    epochs: int | None = None  # None: the architecture's default
    batch_size: int = 32
    seed: int = 0
    out: Path | None = None
    patience: int = 10
    learning_rate: float | None = None  # None: the architecture's default
    strategy: str = "default"
    verbose: int | str = "auto"
    deterministic: bool = True

    def __post_init__(self) -> None:
        if self.dataset is None:  # every architecture trains offline with no options
            from .models import get as get_arch

            object.__setattr__(self, "dataset", get_arch(self.architecture).dataset)
        if self.epochs is not None and self.epochs < 1:
            raise UsageError(f"epochs must be >= 1, found {self.epochs}")
        if self.batch_size < 1:
            raise UsageError(f"batch size must be >= 1, found {self.batch_size}")
        if self.patience < 0:
            raise UsageError(f"patience must be >= 0, found {self.patience}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UsageError(f"learning rate must be > 0, found {self.learning_rate}")
        if self.strategy not in STRATEGIES:
            raise UsageError(f"strategy must be one of {', '.join(STRATEGIES)}, "
                             f"found {self.strategy!r}")
