"""A model's signature (inputs and outputs) and the checks every input passes before a run.

The signature is read once from the session; :func:`Signature.prepare` then turns whatever the
caller passed into the exact feed onnxruntime wants, or raises :class:`InputError` naming the
input, what the model expects and what was given. On the fast path (right dtype, C-contiguous)
arrays are passed through untouched: no copy, no cast.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np

from .dtypes import numpy_dtype, parse_ort_type
from .errors import InputError
from .records import Record

Dim = int | str | None
CastPolicy = Literal["safe", "literal", "force"]
CAST_POLICIES: tuple[str, ...] = ("safe", "literal", "force")


def format_shape(shape: Sequence[Dim] | None) -> str:
    """``[N, 3, 224, 224]``; an unnamed dynamic dimension shows as ``?``."""
    if shape is None:
        return "[any rank]"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


class TensorSpec(Record):
    """One input or output: name, element type and shape (ints static, strings symbolic)."""

    name: str
    type: str
    shape: tuple[Dim, ...] | None
    kind: str = "tensor"
    dtype: np.dtype | None = None  # follows from type

    @classmethod
    def from_node_arg(cls, arg: Any) -> TensorSpec:
        kind, type_name = parse_ort_type(arg.type)
        shape = arg.shape
        dims: tuple[Dim, ...] | None = None
        if shape is not None and kind == "tensor":
            dims = tuple(d if isinstance(d, (int, str)) or d is None else str(d) for d in shape)
            # onnxruntime reports unnamed dynamic dimensions as None, or as negative/0 sometimes.
            dims = tuple(None if isinstance(d, int) and d < 0 else d for d in dims)
        return cls(name=arg.name, type=type_name, shape=dims, kind=kind,
                   dtype=numpy_dtype(type_name) if kind == "tensor" else None)

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def batch_like(self) -> bool:
        """True when the first dimension is a batch dimension (dynamic, or fixed at 1)."""
        return bool(self.shape) and (not isinstance(self.shape[0], int) or self.shape[0] == 1)

    def describe(self) -> str:
        return f"{self.type} {format_shape(self.shape)}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "kind": self.kind,
                "shape": None if self.shape is None else list(self.shape)}


def _values_survive(array: np.ndarray, target: np.dtype) -> bool:
    """True when every value of ``array`` is exactly representable in ``target``."""
    with np.errstate(all="ignore"):
        cast = array.astype(target)
        back = cast.astype(array.dtype)
    if array.dtype.kind in "fc":
        return bool(np.array_equal(back, array, equal_nan=True))
    return bool(np.array_equal(back, array))


def _literal_ok(array: np.ndarray, target: np.dtype) -> bool:
    """Values typed as text (JSON numbers): any number may become a float; ints must be exact."""
    if target.kind == "f" and array.dtype.kind in "biuf":
        with np.errstate(all="ignore"):
            cast = array.astype(target)
        finite = np.isfinite(array)
        return bool(np.isfinite(cast)[finite].all())
    return _values_survive(array, target)


class Signature:
    """Inputs and outputs of a model, with the per-call input checks precomputed."""

    def __init__(self, inputs: Iterable[TensorSpec], outputs: Iterable[TensorSpec]) -> None:
        self.inputs: tuple[TensorSpec, ...] = tuple(inputs)
        self.outputs: tuple[TensorSpec, ...] = tuple(outputs)
        self.input_names: tuple[str, ...] = tuple(s.name for s in self.inputs)
        self.output_names: tuple[str, ...] = tuple(s.name for s in self.outputs)
        self._by_name = {s.name: s for s in self.inputs}
        # Per input: (name, dtype, rank, ((axis, size), ...)) for the no-copy fast path check.
        self._fast = tuple(
            (s.name, s.dtype, len(s.shape),
             tuple((i, d) for i, d in enumerate(s.shape)
                   if isinstance(d, int) and not (i == 0 and d == 1)))
            for s in self.inputs if s.kind == "tensor" and s.shape is not None
            and s.dtype is not None and s.dtype.kind != "O")
        if len(self._fast) != len(self.inputs):
            self._fast = ()
        # One input with a dynamic batch and every other dimension static (most models): the
        # fast path is then one dtype, rank and tuple comparison.
        self._single: tuple[str, np.dtype, int, tuple[int, ...]] | None = None
        if len(self._fast) == 1:
            spec = self.inputs[0]
            assert spec.shape is not None and spec.dtype is not None
            tail = spec.shape[1:]
            if spec.shape and not isinstance(spec.shape[0], int) \
                    and all(isinstance(d, int) for d in tail):
                self._single = (spec.name, spec.dtype, len(spec.shape), tuple(tail))

    @classmethod
    def from_session(cls, session: Any) -> Signature:
        return cls((TensorSpec.from_node_arg(a) for a in session.get_inputs()),
                   (TensorSpec.from_node_arg(a) for a in session.get_outputs()))

    def input(self, name: str) -> TensorSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise InputError(f"the model has no input {name!r}; its inputs are "
                             f"{', '.join(self.input_names)}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [s.to_dict() for s in self.inputs],
                "outputs": [s.to_dict() for s in self.outputs]}

    # -- turning user data into a feed ------------------------------------------------------

    def named(self, data: Any) -> dict[str, Any]:
        """Map whatever was passed (one array, a sequence, a mapping) to input names."""
        if isinstance(data, Mapping):
            unknown = [k for k in data if k not in self._by_name]
            if unknown:
                raise InputError(f"the model has no input {unknown[0]!r}; its inputs are "
                                 f"{', '.join(self.input_names)}")
            missing = [n for n in self.input_names if n not in data]
            if missing:
                raise InputError(f"input {missing[0]!r} is missing: the model needs "
                                 f"{', '.join(self.input_names)}, got {', '.join(data) or 'none'}")
            return dict(data)
        if isinstance(data, (list, tuple)) and len(self.inputs) > 1:
            if len(data) != len(self.inputs):
                raise InputError(f"the model takes {len(self.inputs)} inputs "
                                 f"({', '.join(self.input_names)}), got {len(data)} arrays")
            return dict(zip(self.input_names, data))
        if len(self.inputs) != 1:
            raise InputError(f"the model takes {len(self.inputs)} inputs "
                             f"({', '.join(self.input_names)}): pass them by name")
        return {self.input_names[0]: data}

    def prepare(self, data: Any, cast: CastPolicy = "safe") -> dict[str, np.ndarray]:
        """Check ``data`` against the inputs and return the feed for ``session.run``."""
        feed = self.fast_feed(data)
        if feed is not None:
            return feed
        feed = {name: self.check(self._by_name[name], value, cast)
                for name, value in self.named(data).items()}
        if len(feed) > 1:
            self._check_shared_dims(feed)
        return feed

    def fast_feed(self, data: Any) -> dict[str, np.ndarray] | None:
        """The feed when every array already fits exactly (no cast, copy or batch axis)."""
        single = self._single
        if single is not None and type(data) is np.ndarray:
            name, dtype, rank, tail = single
            if (data.dtype == dtype and data.ndim == rank and data.shape[1:] == tail
                    and data.flags.c_contiguous):
                return {name: data}
            return None
        fast = self._fast
        if not fast:
            return None
        if type(data) is np.ndarray:
            if len(fast) != 1:
                return None
            data = {fast[0][0]: data}
        elif type(data) is not dict or len(data) != len(fast):
            return None
        for name, dtype, rank, static in fast:
            array = data.get(name)
            if (type(array) is not np.ndarray or array.dtype != dtype or array.ndim != rank
                    or not array.flags.c_contiguous):
                return None
            shape = array.shape
            for axis, size in static:
                if shape[axis] != size:
                    return None
        if len(fast) > 1:
            self._check_shared_dims(data)
        return data if type(data) is dict else dict(data)

    def check(self, spec: TensorSpec, value: Any, cast: CastPolicy = "safe") -> np.ndarray:
        """One input: dtype, rank and static dimensions, adding a batch axis to one sample."""
        if spec.kind != "tensor":
            raise InputError(f"input {spec.name!r} is a {spec.kind} ({spec.type}); only tensor "
                             "inputs can be fed")
        array = value if isinstance(value, np.ndarray) else self._as_array(spec, value)
        array = self._cast(spec, array, cast)
        array = self._fit_shape(spec, array)
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        return array

    @staticmethod
    def _as_array(spec: TensorSpec, value: Any) -> np.ndarray:
        try:
            return np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise InputError(f"input {spec.name!r}: cannot make an array of the given value "
                             f"({exc})") from None

    @staticmethod
    def _cast(spec: TensorSpec, array: np.ndarray, cast: CastPolicy) -> np.ndarray:
        target = spec.dtype
        if target is None:
            raise InputError(f"input {spec.name!r} has element type {spec.type}, which NumPy "
                             "cannot hold; this runtime cannot feed it")
        if array.dtype == target:
            return array
        if target.kind == "O":
            if array.dtype.kind in "UO":
                return array.astype(object)
            raise InputError(f"input {spec.name!r} expects strings, got {array.dtype} values")
        if array.dtype.kind not in "biufc":
            raise InputError(f"input {spec.name!r} expects {spec.type}, got {array.dtype} values")
        if cast == "force" or np.can_cast(array.dtype, target, casting="safe"):
            return array.astype(target)
        ok = _literal_ok(array, target) if cast == "literal" else _values_survive(array, target)
        if not ok:
            raise InputError(
                f"input {spec.name!r} expects {spec.type}, got {array.dtype} values that "
                f"{spec.type} cannot hold exactly; convert them first (numpy: "
                f".astype('{target.name}')) or pass --cast")
        return array.astype(target)

    @staticmethod
    def _fit_shape(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
        shape = spec.shape
        if shape is None:
            return array
        given = list(array.shape)
        if array.ndim == len(shape) - 1 and spec.batch_like:
            array = array[np.newaxis, ...]
        if array.ndim != len(shape):
            raise InputError(
                f"input {spec.name!r} expects rank {len(shape)} {format_shape(shape)}, got an "
                f"array of shape {list(array.shape)} (rank {array.ndim})")
        for axis, (want, got) in enumerate(zip(shape, array.shape)):
            if axis == 0 and want == 1:
                continue  # a fixed batch of one: Model.run feeds the samples one at a time
            if isinstance(want, int) and want != got:
                sample = " (one sample)" if len(given) < array.ndim else ""
                raise InputError(
                    f"input {spec.name!r} expects shape {format_shape(shape)}, got "
                    f"{given}{sample}: dimension {axis} must be {want}, found {got}")
        return array

    def _check_shared_dims(self, feed: Mapping[str, np.ndarray]) -> None:
        """A symbolic dimension named in several inputs must take one value in a run."""
        seen: dict[str, tuple[str, int]] = {}
        for name, array in feed.items():
            shape = self._by_name[name].shape or ()
            for axis, dim in enumerate(shape):
                if not isinstance(dim, str):
                    continue
                size = array.shape[axis]
                if dim in seen and seen[dim][1] != size:
                    other, other_size = seen[dim]
                    raise InputError(
                        f"dimension {dim!r} is {other_size} in input {other!r} but {size} in "
                        f"input {name!r}; inputs that share it must agree")
                seen.setdefault(dim, (name, size))
