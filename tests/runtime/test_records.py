"""Record: frozen dataclass behaviour without dataclasses' import-time code generation."""

from __future__ import annotations

import copy
import pickle
import sys
from typing import ClassVar, Mapping

import pytest

from edge_infer.runtime.metadata import ImagePreprocess, ModelMetadata, OutputSpec
from edge_infer.runtime.records import Record, as_dict, field, replace


class Point(Record):
    x: int
    y: int = 0
    label: str = "p"
    ORIGIN: ClassVar[str] = "not a field"


class Checked(Record):
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError(f"value must be >= 0, found {self.value}")


class Point3(Point):
    z: int = 0


def test_fields_come_from_annotations_in_order_without_classvars():
    assert Point._fields == ("x", "y", "label")
    assert Point3._fields == ("x", "y", "label", "z")


def test_positional_keyword_and_default_construction():
    assert as_dict(Point(1)) == {"x": 1, "y": 0, "label": "p"}
    assert as_dict(Point(1, 2, label="q")) == {"x": 1, "y": 2, "label": "q"}
    assert as_dict(Point3(1, z=5)) == {"x": 1, "y": 0, "label": "p", "z": 5}


@pytest.mark.parametrize("args, kwargs, message", [
    ((), {}, "missing required argument: 'x'"),
    ((1, 2, "a", 4), {}, "takes 3 positional arguments but 4 were given"),
    ((1,), {"x": 2}, "multiple values for argument 'x'"),
    ((1,), {"colour": "red"}, "unexpected keyword argument 'colour'"),
])
def test_bad_construction_says_what_is_wrong(args, kwargs, message):
    with pytest.raises(TypeError, match=message):
        Point(*args, **kwargs)


def test_records_are_frozen():
    p = Point(1)
    with pytest.raises(AttributeError, match="frozen"):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError, match="frozen"):
        del p.y
    assert p.x == 1


def test_value_equality_and_hash_by_class_and_fields():
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(1, 3)
    assert Point(1) != Point3(1)  # same values, different class
    assert Point(1) != (1, 0, "p")
    assert len({Point(1, 2), Point(1, 2), Point(2, 2)}) == 2


def test_positional_match_patterns():
    match Point(3, 4):
        case Point(x, y):
            assert (x, y) == (3, 4)
        case _:
            raise AssertionError("Point(x, y) did not match")


def test_repr_names_every_field():
    assert repr(Point(1, label="q")) == "Point(x=1, y=0, label='q')"


def test_post_init_validates_construction_and_replace():
    with pytest.raises(ValueError, match="found -1"):
        Checked(-1)
    ok = Checked(3)
    assert replace(ok, value=4) == Checked(4)
    with pytest.raises(ValueError, match="found -2"):
        replace(ok, value=-2)


def test_replace_keeps_the_original():
    p = Point(1, 2)
    q = replace(p, y=5)
    assert (p.y, q.y, q.x) == (2, 5, 1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'w'"):
        replace(p, w=1)


@pytest.mark.skipif(sys.version_info < (3, 13), reason="copy.replace is Python 3.13+")
def test_copy_replace_works_on_313():
    assert copy.replace(Point(1), x=7) == Point(7)  # type: ignore[attr-defined]


def test_mutable_defaults_are_refused():
    with pytest.raises(TypeError, match="mutable default"):
        class Bad(Record):
            items: list = []  # noqa: RUF012


def test_default_factory_makes_a_fresh_value_per_instance():
    class WithMap(Record):
        name: str
        extra: Mapping[str, str] = field(default_factory=dict)

    a, b = WithMap("a"), WithMap("b")
    assert a.extra == {} and a.extra is not b.extra
    assert WithMap("c", {"k": "v"}).extra == {"k": "v"}
    assert "extra" not in WithMap.__dict__  # the marker is not left as a class attribute


def test_records_pickle_and_copy():
    meta = ModelMetadata(task="classification", labels=("a", "b"),
                         preprocess=ImagePreprocess(size=(8, 8)), output=OutputSpec(),
                         raw={"k": "v"})
    assert pickle.loads(pickle.dumps(meta)) == meta
    assert copy.deepcopy(meta) == meta and copy.copy(meta) == meta
    assert pickle.loads(pickle.dumps(Point(1, 2))) == Point(1, 2)


def test_required_field_after_default_is_refused():
    with pytest.raises(TypeError, match="'b' without a default follows"):
        class Bad(Record):
            a: int = 0
            b: int
