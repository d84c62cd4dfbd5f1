"""Repeated runs on fixed shapes without per-call allocation: onnxruntime IO binding.

``Model.run`` hands onnxruntime a dict of arrays each call, and onnxruntime wraps each array,
allocates the outputs and converts them back: about 7 us per call on this project's machines
(``benchmarks/dispatch_cost.py``: 14 against 7 us of fixed cost per call), a sixth of the 8x8
digits CNN's batch-1 call. A camera or sensor loop runs the
same shapes thousands of times, so ``Model.bind()`` allocates the input and output buffers once,
binds them to the session, and each call only runs the graph::

    runner = model.bind(batch_size=1)
    for frame in frames:
        runner.inputs["image"][0] = frame      # or runner(frame): one copy into the buffer
        runner()
        best = runner.outputs["probabilities"].argmax()

The output arrays are reused: read or copy them before the next call. TensorFlow Lite's
interpreter works the same way (``set_tensor`` copies in, ``invoke`` runs in place).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from .errors import InputError, ModelRunError

if TYPE_CHECKING:
    from .model import Model


class BoundRunner:
    """Input and output buffers bound once to one session; see the module docstring."""

    def __init__(self, model: Model, batch_size: int = 1,
                 dims: Mapping[str, int] | None = None) -> None:
        import onnxruntime as ort

        from .bench import make_inputs

        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, found {batch_size}")
        self.model = model
        self.session = model.session
        self.inputs: dict[str, np.ndarray] = {
            name: np.zeros_like(a) for name, a in
            make_inputs(model.signature, batch_size, dict(dims or {})).items()}
        try:
            first = self.session.run(None, self.inputs)
        except Exception as exc:
            raise ModelRunError(f"onnxruntime failed to run {model.name} on "
                                f"{_shapes(self.inputs)}: {exc}") from exc
        self.outputs: dict[str, np.ndarray] = {
            name: np.empty_like(a) for name, a in zip(model.signature.output_names, first)}
        self._only = next(iter(self.inputs.values())) if len(self.inputs) == 1 else None
        self._binding = self.session.io_binding()
        # ortvalue_from_numpy shares a CPU array's memory: writing into self.inputs is enough.
        self._values = []
        for name, array in self.inputs.items():
            value = ort.OrtValue.ortvalue_from_numpy(array)
            self._binding.bind_ortvalue_input(name, value)
            self._values.append(value)
        for name, array in self.outputs.items():
            value = ort.OrtValue.ortvalue_from_numpy(array)
            self._binding.bind_ortvalue_output(name, value)
            self._values.append(value)
        self._run = self._runner(model)

    def _runner(self, model: Model) -> Any:
        """The call that runs the bound graph. The compiled session's, with the model's
        RunOptions, unless WebGPU graph capture is on (the Python wrapper keeps its
        bookkeeping): the wrapper costs 4 to 5 us a call on the digits CNN, and handed a
        RunOptions it looks up a config key by catching an exception, 85 us a call
        (onnxruntime 1.32)."""
        from functools import partial

        native = getattr(self.session, "_sess", None)
        binding = getattr(self._binding, "_iobinding", None)
        capture = getattr(native, "is_webgpu_graph_capture_enabled", None)
        compiled = callable(getattr(native, "run_with_iobinding", None))
        if not compiled or binding is None or (callable(capture) and capture()):
            return partial(self.session.run_with_iobinding, self._binding)
        return partial(native.run_with_iobinding, binding, model._run_options)

    def __call__(self, inputs: Any = None) -> dict[str, np.ndarray]:
        """Run on the bound buffers, after copying ``inputs`` (one array, or a mapping by input
        name, of exactly the bound shapes) into them. Returns the reused output buffers."""
        if inputs is not None:
            only = self._only
            if (only is not None and type(inputs) is np.ndarray and inputs.shape == only.shape
                    and inputs.dtype == only.dtype):
                np.copyto(only, inputs)  # the common case, without the checks below
            else:
                self._copy_in(inputs)
        try:
            self._run()
        except Exception as exc:
            raise ModelRunError(f"onnxruntime failed to run {self.model.name}: "
                                f"{exc}") from exc
        return self.outputs

    def _copy_in(self, inputs: Any) -> None:
        if not isinstance(inputs, Mapping):
            if len(self.inputs) != 1:
                raise InputError(f"the model has {len(self.inputs)} inputs; pass a mapping by "
                                 f"input name ({', '.join(self.inputs)})")
            inputs = {next(iter(self.inputs)): inputs}
        for name, value in inputs.items():
            buffer = self.inputs.get(name)
            if buffer is None:
                raise InputError(f"the model has no input {name!r}; its inputs are "
                                 f"{', '.join(self.inputs)}")
            value = np.asarray(value)
            if value.shape != buffer.shape:
                raise InputError(f"input {name!r} is bound with shape {list(buffer.shape)}, "
                                 f"found {list(value.shape)}; bind another runner for other "
                                 "shapes")
            if not np.can_cast(value.dtype, buffer.dtype, casting="same_kind"):
                raise InputError(f"input {name!r} is {buffer.dtype}, found {value.dtype}")
            np.copyto(buffer, value, casting="same_kind")


def _shapes(arrays: Mapping[str, np.ndarray]) -> str:
    return ", ".join(f"{k} {list(v.shape)}" for k, v in arrays.items())
