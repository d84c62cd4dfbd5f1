"""The train/export commands turn TensorFlow's C++ logging down, unless the user chose a level."""

from __future__ import annotations

import os

from edge_infer.train.tf_logging import quiet_tensorflow


def test_hides_up_to_errors_by_default(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"


def test_keeps_the_users_level(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
