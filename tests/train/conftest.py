"""Training tests need the [train] extra; they make their own small data."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

SPAM = "win free prize cash claim now urgent offer winner credit reply stop".split()
HAM = "hey see you later lunch tomorrow thanks meeting home love dinner sure".split()


def write_messages(path: Path, n: int = 120, seed: int = 0, header: bool = True) -> Path:
    """A small spam/ham CSV of label,text rows, with punctuation and capitals to tokenize."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if header:
            writer.writerow(["label", "text"])
        for i in range(n):
            if i % 2:
                writer.writerow(["spam", " ".join(rng.choices(SPAM, k=rng.randint(4, 9))).upper() + "!!"])
            else:
                writer.writerow(["ham", " ".join(rng.choices(HAM, k=rng.randint(3, 8))).capitalize() + "."])
    return path


@pytest.fixture
def messages_csv(tmp_path) -> Path:
    return write_messages(tmp_path / "messages.csv")
