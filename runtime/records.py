"""Frozen value records with dataclass syntax, at no import-time cost.

Why not ``@dataclass(frozen=True)``: it writes the source of six methods per class and compiles
each with ``exec`` when the module is imported. That is about 1.3 ms a class on a two-core
machine; the eleven records ``edge-infer run`` needs cost 12 ms of a cold start that
``benchmarks/suite.py`` holds to 1.2x a bare onnxruntime script, and several times that on a
Raspberry Pi. A :class:`Record` subclass reads its fields once from its annotations and shares
one generic ``__init__``, ``__repr__``, ``__eq__`` and ``__hash__``: nothing is compiled.

What a record keeps from frozen dataclasses: fields in annotation order (inherited first),
defaults as class attributes, positional or keyword construction, ``__post_init__`` for
validation, value equality and hashing, a readable repr, immutability, pickling and copying.
A default is shared by every instance, so it must be immutable (a tuple, a string, None);
``field(default_factory=dict)`` makes a fresh one per instance instead. :func:`replace` (and
``copy.replace`` on Python 3.13+) returns a changed copy, validated again; positional
``match`` patterns work. Type checkers see the fields through ``typing.dataclass_transform``.
Records are not dataclasses: ``dataclasses.fields``/``asdict`` do not apply (:func:`as_dict`
does, shallowly).
"""

from __future__ import annotations

import inspect  # already imported by numpy and onnxruntime
import sys
from typing import Any, Callable, ClassVar, TypeVar

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # Python 3.10: type checkers then see plain classes
    def dataclass_transform(**_: Any) -> Callable[[type], type]:
        return lambda cls: cls

R = TypeVar("R", bound="Record")
_MISSING = object()
_MUTABLE = (list, dict, set, bytearray)


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], Any]) -> Any:
    """A default made fresh for each instance: ``raw: dict = field(default_factory=dict)``."""
    return _Factory(default_factory)


@dataclass_transform(frozen_default=True, eq_default=True, field_specifiers=(field,))
class Record:
    """Base class: ``class Point(Record): x: int; y: int = 0``."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}
    _post_init: ClassVar[Callable[[Any], None] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = [name for name, kind in inspect.get_annotations(cls).items()
               if not str(kind).startswith(("ClassVar", "typing.ClassVar"))]
        fields = cls._fields + tuple(name for name in own if name not in cls._fields)
        defaults = dict(cls._defaults)
        for name in own:
            value = cls.__dict__.get(name, _MISSING)
            if value is _MISSING:
                continue
            if isinstance(value, _Factory):
                delattr(cls, name)  # as dataclasses do: the class attribute is not a value
            elif isinstance(value, _MUTABLE):
                raise TypeError(f"{cls.__name__}.{name}: a mutable default would be shared by "
                                "every instance; use field(default_factory=...)")
            defaults[name] = value
        seen_default = False
        for name in fields:
            if name in defaults:
                seen_default = True
            elif seen_default:
                raise TypeError(f"{cls.__name__}: field {name!r} without a default follows "
                                "a field with one")
        cls._fields, cls._defaults = fields, defaults
        cls.__match_args__ = fields
        cls._post_init = getattr(cls, "__post_init__", None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # One shared __init__ for every record, kept close to a generated one's speed: a
        # Prediction is made per class per sample in Model.classify, a hot path.
        cls = type(self)
        if kwargs or len(args) != len(cls._fields):
            self.__dict__.update(cls._bind(args, kwargs))
        else:  # every field given in order
            self.__dict__.update(zip(cls._fields, args))
        # (__dict__ directly: the frozen __setattr__ is bypassed, as dataclasses do)
        if cls._post_init is not None:
            cls._post_init(self)

    @classmethod
    def _bind(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Every field's value from positional and keyword arguments and the defaults."""
        fields = cls._fields
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__}() takes {len(fields)} positional arguments but "
                            f"{len(args)} were given")
        values = dict(zip(fields, args))
        for name in kwargs:
            if name not in fields:
                raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}")
            if name in values:
                raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
        values.update(kwargs)
        for name in fields:
            if name not in values:
                value = cls._defaults.get(name, _MISSING)
                if value is _MISSING:
                    raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
                values[name] = value.make() if value.__class__ is _Factory else value
        return values

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({inner})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot assign {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def __replace__(self: R, **changes: Any) -> R:
        return type(self)(**{**as_dict(self), **changes})


def replace(record: R, /, **changes: Any) -> R:
    """A copy of ``record`` with ``changes`` applied (and ``__post_init__`` run again)."""
    return record.__replace__(**changes)


def as_dict(record: Record) -> dict[str, Any]:
    """The fields and their values, in order (shallow, unlike ``dataclasses.asdict``)."""
    return {name: getattr(record, name) for name in record._fields}
