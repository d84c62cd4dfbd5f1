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
        self._only = next(iter(self.inputs.values())) if len(self.inputs) == 1 else None
        self._binding = self.session.io_binding()
        self._values: list[Any] = []  # the bound OrtValues, kept alive with the binding
        self._run_options = model._run_options
        self.outputs: dict[str, np.ndarray] = self._bind(ort)
        self._run = self._runner(model)

    def _bind(self, ort: Any) -> dict[str, np.ndarray]:
        """Bind ``self.inputs`` and output arrays sized by one run; returns the outputs."""
        try:
            first = self.session.run(None, self.inputs)
        except Exception as exc:
            raise ModelRunError(f"onnxruntime failed to run {self.model.name} on "
                                f"{_shapes(self.inputs)}: {exc}") from exc
        outputs = {name: np.empty_like(a)
                   for name, a in zip(self.model.signature.output_names, first)}
        # ortvalue_from_numpy shares a CPU array's memory: writing into self.inputs is enough.
        for name, array in self.inputs.items():
            value = ort.OrtValue.ortvalue_from_numpy(array)
            self._binding.bind_ortvalue_input(name, value)
            self._values.append(value)
        for name, array in outputs.items():
            value = ort.OrtValue.ortvalue_from_numpy(array)
            self._binding.bind_ortvalue_output(name, value)
            self._values.append(value)
        return outputs

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
        return partial(native.run_with_iobinding, binding, self._run_options)

    def __call__(self, inputs: Any = None) -> dict[str, np.ndarray]:
        """Run on the bound buffers, after copying ``inputs`` (one array, or a mapping by input
        name, of exactly the bound shapes) into them. Returns the reused output buffers."""
        if inputs is not None:
            self._take(inputs)
        try:
            self._run()
        except Exception as exc:
            raise ModelRunError(f"onnxruntime failed to run {self.model.name}: "
                                f"{exc}") from exc
        return self.outputs

    def _take(self, inputs: Any) -> None:
        only = self._only
        if (only is not None and type(inputs) is np.ndarray and inputs.shape == only.shape
                and inputs.dtype == only.dtype):
            np.copyto(only, inputs)  # the common case, without the checks of _copy_in
        else:
            self._copy_in(inputs)

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


class GraphRunner(BoundRunner):
    """Buffers bound in the GPU's memory, for a session that captures a CUDA graph
    (``cuda.graph=1``): onnxruntime records the kernels of one run and then launches them as a
    single graph, reading and writing the same device buffers on every call. ``inputs`` and
    ``outputs`` stay NumPy arrays in host memory, used as with :class:`BoundRunner`; each call
    copies the inputs to the device, replays the graph and copies the outputs back.

    It pays where launching the kernels is most of a call, small batches. On an H100
    (onnxruntime-gpu 1.31.1, ``bench --io-binding``), MobileNetV2 224x224 at batch 1 took
    0.55 ms a call in fp16 and 0.72-0.76 ms in float32, copies included, against 1.0-1.7 ms
    with buffers in host memory. At batch 8 and 64 it was slower: onnxruntime's synchronous copy
    into a device buffer costs more than its own copy of a bound host buffer (BENCHMARKS.md,
    "CUDA graphs").
    """

    def _bind(self, ort: Any) -> dict[str, np.ndarray]:
        assert self.model.graph_device is not None
        device, device_id = self.model.graph_device
        # A graph of its own: a session replays one captured graph per id, whatever binding
        # a later run hands it, so a second runner (another batch size) under the same id
        # would run the first one's buffers.
        self._run_options = ort.RunOptions()
        self._run_options.add_run_config_entry("gpu_graph_id", str(next(self.model._graph_ids)))
        self._device_inputs = []
        # Buffers of their own on every device (on the CPU too, where tests run this class):
        # each call copies into them, and back out of the outputs'.
        for name, array in self.inputs.items():
            value = ort.OrtValue.ortvalue_from_shape_and_type(array.shape, array.dtype, device,
                                                              device_id)
            self._binding.bind_ortvalue_input(name, value)
            self._device_inputs.append((value, array))
        names = list(self.model.signature.output_names)
        for name in names:
            self._binding.bind_output(name, device, device_id)
        for value, host in self._device_inputs:
            value.update_inplace(host)
        # An ordinary run first (onnxruntime captures on a later one): it sizes the outputs,
        # whose device buffers then stay bound for the captured graph to write into.
        try:
            self.session.run_with_iobinding(self._binding, self._run_options)
        except Exception as exc:
            raise ModelRunError(f"onnxruntime failed to run {self.model.name} on "
                                f"{_shapes(self.inputs)} with a CUDA graph: {exc}") from exc
        outputs: dict[str, np.ndarray] = {}
        self._device_outputs = []
        for name, value in zip(names, self._binding.get_outputs()):
            self._binding.bind_ortvalue_output(name, value)
            outputs[name] = np.array(value.numpy(), copy=True)
            self._device_outputs.append((value, outputs[name]))
        return outputs

    def __call__(self, inputs: Any = None) -> dict[str, np.ndarray]:
        if inputs is not None:
            self._take(inputs)
        try:
            for value, host in self._device_inputs:
                value.update_inplace(host)
            self._run()
            for value, host in self._device_outputs:
                np.copyto(host, value.numpy())
        except Exception as exc:
            raise ModelRunError(f"onnxruntime failed to run {self.model.name}: "
                                f"{exc}") from exc
        return self.outputs


def _shapes(arrays: Mapping[str, np.ndarray]) -> str:
    return ", ".join(f"{k} {list(v.shape)}" for k, v in arrays.items())
