"""Training errors; they reuse the runtime's families so the CLI maps them to exit statuses."""

from __future__ import annotations

from edge_infer.runtime.errors import EdgeInferError, UsageError


class DatasetError(UsageError):
    """A dataset spec or file is wrong: unknown name, corrupt file, missing column (exit 2)."""


class IncompatibleError(UsageError):
    """The dataset does not fit the architecture (text into a CNN, say); found before training."""


class OfflineError(EdgeInferError):
    """A download-only dataset was asked for on a machine that cannot reach the internet."""
