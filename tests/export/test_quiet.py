"""Other libraries' noise dropped while they run (export/quiet.py)."""

from __future__ import annotations

import logging

from edge_infer.export.convert import CONVERSION_NOISE
from edge_infer.export.quiet import dropped


def test_only_the_named_messages_of_the_named_logger_are_dropped_and_only_inside(caplog):
    caplog.set_level("WARNING")
    noisy, other = logging.getLogger("tf2onnx.optimizer"), logging.getLogger("tf2onnx.tfonnx")
    with dropped(CONVERSION_NOISE):
        noisy.warning("Failed to apply %s", "optimize_transpose")
        noisy.warning("a warning worth reading")
        other.warning("Failed to apply, from another logger")
    noisy.warning("Failed to apply %s", "after the block")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["a warning worth reading", "Failed to apply, from another logger",
                        "Failed to apply after the block"]
    assert not noisy.filters
