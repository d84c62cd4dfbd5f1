"""Dataset loaders: built-in, user files, Keras downloads offline, and their bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from edge_infer.train.datasets import DATASETS, load_dataset
from edge_infer.train.errors import DatasetError, OfflineError

from .conftest import write_messages


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_builtin_datasets(name):
    d = load_dataset(name, seed=0)
    assert len(d.x_train) > len(d.x_val) > 0 and len(d.x_test) > 0
    assert d.x_train.dtype == np.float32
    total = len(d.x_train) + len(d.x_val) + len(d.x_test)
    assert abs(len(d.x_test) / total - 0.2) < 0.02
    if d.task == "classification":
        assert set(np.unique(d.y_test)) == set(range(d.num_classes))  # stratified


def test_digits_is_the_real_data():
    d = load_dataset("digits")
    assert d.input_shape == (8, 8, 1) and d.labels == tuple(str(i) for i in range(10))
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert d.preprocess.scale == pytest.approx(1 / 255)


def test_split_is_deterministic_per_seed():
    a, b, c = load_dataset("digits", seed=3), load_dataset("digits", seed=3), load_dataset("digits", seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, c.y_test)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'; known: digits, .*keras:mnist"):
        load_dataset("imagenet")
    with pytest.raises(DatasetError, match=r"'mnist' \(did you mean 'keras:mnist'\?\); known"):
        load_dataset("mnist")


def test_keras_download_fails_at_once_offline(monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/mnist.npz: None -- "
                        "[Errno -2] Name or service not known")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(OfflineError, match="keras:mnist must be downloaded.*offline, use digits"):
        load_dataset("keras:mnist")
    with pytest.raises(DatasetError, match="unknown Keras dataset keras:svhn"):
        load_dataset("keras:svhn")


def test_mnist_like_npz_with_test_split_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(60, 28, 28), dtype=np.uint8)
    y = np.arange(60) % 3
    path = tmp_path / "mnist_small.npz"
    np.savez(path, x_train=x[:45], y_train=y[:45], x_test=x[45:], y_test=y[45:],
             labels=np.array(["a", "b", "c"]))
    d = load_dataset(str(path))
    assert d.kind == "image" and d.input_shape == (28, 28, 1)
    assert len(d.x_test) == 15 and len(d.x_train) + len(d.x_val) == 45
    assert d.labels == ("a", "b", "c") and d.x_train.max() <= 1.0


def test_npz_tabular_regression_and_one_hot(tmp_path):
    np.savez(tmp_path / "reg.npz", x_train=np.random.rand(30, 3), y_train=np.random.rand(30))
    assert load_dataset(str(tmp_path / "reg.npz")).task == "regression"
    np.savez(tmp_path / "hot.npz", x_train=np.random.rand(30, 3), y_train=np.eye(3)[np.arange(30) % 3])
    d = load_dataset(str(tmp_path / "hot.npz"))
    assert d.task == "classification" and d.num_classes == 3


def test_bad_npz_files(tmp_path):
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match="corrupt.npz is not a readable .npz file"):
        load_dataset(str(tmp_path / "corrupt.npz"))
    np.savez(tmp_path / "keys.npz", images=np.zeros((5, 2)))
    with pytest.raises(DatasetError, match="keys.npz has no x_train, y_train.*found images"):
        load_dataset(str(tmp_path / "keys.npz"))
    np.savez(tmp_path / "half.npz", x_train=np.zeros((5, 2)), y_train=np.zeros(5), x_test=np.zeros((2, 2)))
    with pytest.raises(DatasetError, match="only one of x_test and y_test"):
        load_dataset(str(tmp_path / "half.npz"))


def test_image_folder(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    for label, value in (("dark", 20), ("light", 230)):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((10, 12), value + i, np.uint8)).save(
                tmp_path / "imgs" / label / f"{i}.png")
    d = load_dataset(str(tmp_path / "imgs"))
    assert d.labels == ("dark", "light") and d.input_shape == (10, 12, 1)
    dark = d.x_train[d.y_train == 0]
    assert dark.max() < 0.2


def test_text_csv_vocabulary_and_labels(tmp_path):
    d = load_dataset(str(write_messages(tmp_path / "m.csv")))
    assert d.kind == "text" and d.labels == ("ham", "spam")
    assert d.x_train.dtype == np.int64 and d.x_train.shape[1] == d.preprocess.sequence_length
    assert d.preprocess.vocabulary[:2] == ("", "[UNK]") and "prize" in d.preprocess.vocabulary


def test_runtime_tokenizer_matches_keras_text_vectorization(tmp_path):
    """The runtime must turn raw text into the ids the model was trained on."""
    import keras

    from edge_infer.runtime.inputs.text import Tokenizer

    d = load_dataset(str(write_messages(tmp_path / "m.csv")))
    pre = d.preprocess
    layer = keras.layers.TextVectorization(vocabulary=list(pre.vocabulary[2:]),
                                           output_sequence_length=pre.sequence_length)
    texts = ["WIN a FREE prize!!", "Hey, see you... later?", "  love\tdinner\nhome  ",
             "claim-now (urgent) offer's", "UNKNOWN words only", "", "ünïcode Café WIN"]
    ours = Tokenizer(pre).encode(texts, pre.sequence_length)
    theirs = np.asarray(layer(texts))
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("content,message", [
    ("just some text without a label column\nanother line\nthird\n",
     r"bad.csv: line 1 is not a label,text row \(found 1 column\)"),
    ("ham,hello\nham,there\nham,again\n", "every row has label 'ham'"),
    ("ham,hello\n", "holds 1 label,text rows"),
])
def test_bad_text_csv(tmp_path, content, message):
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_dataset(str(tmp_path / "bad.csv"))


def test_keras_mnist_path_with_a_cached_copy(monkeypatch):
    """What keras:mnist does with the arrays Keras returns (here from a stand-in loader)."""
    import keras

    rng = np.random.default_rng(0)
    train_xy = (rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), np.arange(50) % 10)
    test_xy = (rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), np.arange(20) % 10)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: (train_xy, test_xy))
    d = load_dataset("keras:mnist")
    assert d.input_shape == (28, 28, 1) and len(d.x_test) == 20
    assert len(d.x_train) + len(d.x_val) == 50 and d.x_train.max() <= 1.0
    assert d.preprocess.size == (28, 28)


def test_keras_imdb_tokens_match_the_runtime_tokenizer(monkeypatch):
    """IMDB arrives as Keras' token ids; the stored vocabulary must let the runtime produce
    the same ids from raw text."""
    import keras

    from edge_infer.runtime.inputs.text import Tokenizer

    word_index = {"the": 1, "movie": 2, "was": 3, "great": 4, "awful": 5}
    # Keras offsets word ids by 3 and starts every review with 1 ([START]); 2 is out of vocabulary.
    reviews = [[1, 4, 5, 6, 7], [1, 4, 5, 6, 8], [1, 2, 4, 5], [1, 4, 5, 7], [1, 4, 5, 8, 2]]
    labels = np.array([1, 0, 1, 1, 0])
    fake = ((np.array(reviews, dtype=object), labels), (np.array(reviews[:2], dtype=object),
                                                        labels[:2]))
    monkeypatch.setattr(keras.datasets.imdb, "load_data", lambda num_words: fake)
    monkeypatch.setattr(keras.datasets.imdb, "get_word_index", lambda: word_index)
    d = load_dataset("keras:imdb")
    assert d.kind == "text" and d.labels == ("negative", "positive")
    ids = Tokenizer(d.preprocess).encode(["The movie was GREAT!", "the movie was awful."],
                                         d.preprocess.sequence_length)
    np.testing.assert_array_equal(ids, d.x_test[:2])
