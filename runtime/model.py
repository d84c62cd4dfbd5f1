"""``Model``: one onnxruntime session, created once, with the signature and metadata read once.

Per call the runtime only checks the inputs against the precomputed signature (no metadata
re-reads, no copies on the fast path) and hands them to ``InferenceSession.run``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np
import onnxruntime as ort

from .errors import (InputError, ModelFileError, ModelRunError, ProviderFallbackWarning,
                     ProviderUnavailableError, UsageError)
from .metadata import ModelMetadata
from .providers import graph_capture, resolve, session_providers, short_name
from .records import Record
from .signature import CAST_POLICIES, CastPolicy, Signature, TensorSpec

if TYPE_CHECKING:
    from pathlib import Path

    from .bound import BoundRunner
    from .predictions import Prediction
    from .tuned import Tuned

OPTIMIZATION_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class SessionConfig(Record):
    """Session settings; validated here so a bad value fails before onnxruntime sees it."""

    threads: int | None = None
    inter_op_threads: int | None = None
    optimization: str = "all"
    log_level: int = 3  # onnxruntime's severity: 0 verbose .. 4 fatal; 3 keeps its warnings quiet
    optimized_model_path: str | None = None
    # Whether idle pool threads spin-wait for work (None: onnxruntime's default, they do).
    # Spinning saves the wake-up between operators and calls (15-20 us a call back to back on
    # the digits cnn), but threads go on spinning after a call: a 10 Hz sensor loop kept 56%
    # of a core busy, against 0.5% without, for at most 0.08 ms a call (`bench --rate`, README).
    spinning: bool | None = None
    # onnxruntime's profiler on, its trace written to PREFIX_<time>.json by
    # ``session.end_profiling()`` (``edge-infer bench --profile``; runtime/profile.py).
    profile_prefix: str | None = None

    def __post_init__(self) -> None:
        for name in ("threads", "inter_op_threads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise InputError(f"{name} must be a whole number >= 0 (0: onnxruntime "
                                 f"decides), found {value!r}")
        if self.spinning is not None and not isinstance(self.spinning, bool):
            raise InputError(f"spinning must be True, False or None, found {self.spinning!r}")
        if self.optimization not in OPTIMIZATION_LEVELS:
            raise InputError(f"optimization must be one of {', '.join(OPTIMIZATION_LEVELS)}, "
                             f"found {self.optimization!r}")

    def session_options(self) -> ort.SessionOptions:
        so = ort.SessionOptions()
        if self.threads is not None:
            so.intra_op_num_threads = self.threads
        if self.inter_op_threads is not None:
            so.inter_op_num_threads = self.inter_op_threads
        so.graph_optimization_level = OPTIMIZATION_LEVELS[self.optimization]
        so.log_severity_level = self.log_level
        if self.optimized_model_path:
            so.optimized_model_filepath = self.optimized_model_path
        if self.spinning is not None:
            flag = "1" if self.spinning else "0"
            so.add_session_config_entry("session.intra_op.allow_spinning", flag)
            so.add_session_config_entry("session.inter_op.allow_spinning", flag)
        if self.profile_prefix:
            so.enable_profiling = True
            so.profile_file_prefix = self.profile_prefix
        return so


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class Model:
    """A loaded ONNX model.

    >>> model = Model("model.onnx", providers=["cuda"], threads=2)   # doctest: +SKIP
    >>> outputs = model.run(x)               # {"output name": array}
    >>> model.classify(x, k=3)[0][0].label    # best class of the first sample

    Threads and spinning left unset come from the file when ``edge-infer tune`` recorded a
    setting for this kind of machine (:attr:`tuned`), else from onnxruntime's defaults.
    """

    def __init__(self, path: str | os.PathLike[str],
                 providers: Sequence[str] | str | None = None, *,
                 threads: int | None = None,
                 spinning: bool | None = None,
                 provider_options: Mapping[str, Mapping[str, Any]] | None = None,
                 strict: bool = False,
                 config: SessionConfig | None = None,
                 session_options: ort.SessionOptions | None = None,
                 cast: CastPolicy = "safe",
                 tuned: bool = True) -> None:
        self.location: str = os.fspath(path)
        if not os.path.exists(self.location):
            raise ModelFileError(f"model file {self.location} does not exist")
        if os.path.isdir(self.location):
            from .not_onnx import describe_folder

            raise ModelFileError(describe_folder(self.location))
        if cast not in CAST_POLICIES:
            raise InputError(f"cast must be one of {', '.join(CAST_POLICIES)}, found {cast!r}")
        self.cast: CastPolicy = cast
        # The threads and spinning `edge-infer tune` recorded in the file for this kind of
        # machine fill in what the caller left unset (runtime/tuned.py); ``tuned=False``
        # ignores them (the tuner itself, timing onnxruntime's defaults).
        self.tuned: Tuned | None = None
        if (tuned and config is None and session_options is None
                and (threads is None or spinning is None)):
            from .tuned import for_this_machine

            self.tuned = for_this_machine(self.location)
            if self.tuned is not None:
                threads = self.tuned.threads if threads is None else threads
                spinning = self.tuned.spinning if spinning is None else spinning
        self.config = config or SessionConfig(threads=threads, spinning=spinning)
        choice = resolve(providers, provider_options, strict=strict)
        so = session_options or self.config.session_options()
        names, options = session_providers(so, choice)
        self.session = self._create_session(so, names, options)
        props = self.session.get_modelmeta().custom_metadata_map
        if "edge_infer.requires" in props:  # compat.KEY_REQUIRES, without importing it
            self._meet_requirements(props, so, names, options)
        self.providers: list[str] = list(self.session.get_providers())
        self._check_providers(choice.providers, strict)
        # (device type, id) when the session replays a captured CUDA graph: then only bound
        # device buffers run it (bind()), and run() refuses.
        self.graph_device: tuple[str, int] | None = graph_capture(self.session)
        self._graph_ids = itertools.count(1)  # one captured graph per bound runner
        self.signature = Signature.from_session(self.session)
        self.metadata = ModelMetadata.from_props(props)
        self._output_names = list(self.signature.output_names)
        run = getattr(getattr(self.session, "_sess", None), "run", None)
        self._native = self.session._sess if callable(run) else None
        # One RunOptions for every call. Given None instead, onnxruntime 1.32's binding costs
        # more per call: benchmarks/dispatch_cost.py fitted 17-18 us per call before, 12-14 us
        # after, and on runtime_overhead.py --threads 1 (28x28 CNN) Model.run is now 3.9%
        # faster than a bare InferenceSession.run. onnxruntime only reads it during a run.
        self._run_options = ort.RunOptions()
        # A fixed batch of one forces runs of one sample; precomputed to keep run() cheap.
        self._fixed_one = any(s.shape and s.shape[0] == 1 for s in self.signature.inputs)
        # run()'s path for one array that already fits a single-input model, with everything
        # it needs in one tuple: the Python around onnxruntime's call is most of Model.run's
        # cost over the compiled session at batch 1 (benchmarks/runtime_overhead.py).
        single = self.signature._single
        self._fast: tuple[Any, ...] | None = None
        if (single is not None and self._native is not None and not self._fixed_one
                and self.graph_device is None):
            self._fast = (*single, self._native.run, self._output_names, self._run_options)

    def _create_session(self, so: ort.SessionOptions, providers: list[str] | None,
                        options: list[dict[str, Any]] | None,
                        disabled_optimizers: list[str] | None = None) -> ort.InferenceSession:
        extra = {"disabled_optimizers": disabled_optimizers} if disabled_optimizers else {}
        try:
            # When a provider fails to start, onnxruntime prints its fallback notice with
            # print(): keep it off standard output, which may be JSON (`bench --format json`).
            with contextlib.redirect_stdout(sys.stderr):
                return ort.InferenceSession(self.location, sess_options=so,
                                            providers=providers, provider_options=options,
                                            **extra)
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            # Tell a file that is not a model apart from a model onnxruntime cannot run.
            from .modelfile import read_model_info

            info = read_model_info(self.location)  # ModelFileError: truncated, not ONNX
            from .compat import loading_hint

            raise ModelRunError(f"onnxruntime could not load {self.location}: "
                                f"{_first_line(exc)}{loading_hint(info, ort.__version__)}"
                                ) from exc

    def _meet_requirements(self, props: Mapping[str, str], so: ort.SessionOptions,
                           providers: list[str] | None,
                           options: list[dict[str, Any]] | None) -> None:
        """On an onnxruntime older than the file needs for its speed, make the session again
        without the optimizers the file names for that case, or warn (``compat.py``). Only
        then is a second session made."""
        from .compat import older_release_plan
        from .errors import OlderRuntimeWarning

        disable, lines = older_release_plan(props, ort.__version__, self.name)
        if disable:
            self.session = self._create_session(so, providers, options, disable)
        for line in lines:
            warnings.warn(line, OlderRuntimeWarning, stacklevel=3)

    def _check_providers(self, requested: list[str], strict: bool) -> None:
        """A provider the build has may still fail to start (no CUDA libraries, say)."""
        lost = [p for p in requested if p not in self.providers]
        if not lost:
            return
        message = (f"execution provider {', '.join(short_name(p) for p in lost)} could not be "
                   f"started; running on {', '.join(short_name(p) for p in self.providers)}")
        if strict:
            raise ProviderUnavailableError(message)
        warnings.warn(message, ProviderFallbackWarning, stacklevel=3)

    # -- properties ----------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The model file as a ``pathlib.Path``, made on demand: pathlib and what it imports
        cost ~6 ms, so the ``edge-infer run`` path works with the string :attr:`location`."""
        from pathlib import Path

        return Path(self.location)

    @property
    def name(self) -> str:
        """The model file's name, e.g. ``model.int8.onnx``."""
        return os.path.basename(self.location)

    @property
    def provider(self) -> str:
        """Short name of the provider that runs first (``cpu``, ``cuda``, ...)."""
        return short_name(self.providers[0])

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.signature.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.signature.outputs

    def __repr__(self) -> str:
        return f"Model({self.location!r}, provider={self.provider!r})"

    # -- running -------------------------------------------------------------------------

    def run(self, inputs: Any, *, outputs: Sequence[str] | None = None,
            batch_size: int | None = None, cast: CastPolicy | None = None
            ) -> dict[str, np.ndarray]:
        """Run the model; returns ``{output name: array}``.

        ``inputs`` is one array (single-input models), a sequence of arrays in input order, or a
        mapping by input name. An array with one dimension less than a batched input is taken as
        one sample. With ``batch_size`` the batch is split into runs of at most that many
        samples and the outputs concatenated.
        """
        fast = self._fast
        if fast is not None and type(inputs) is np.ndarray and outputs is None \
                and batch_size is None:
            name, dtype, rank, tail, native_run, names, options = fast
            if (inputs.dtype == dtype and inputs.ndim == rank and inputs.shape[1:] == tail
                    and inputs.flags.c_contiguous):
                try:
                    return dict(zip(names, native_run(names, {name: inputs}, options)))
                except Exception as exc:
                    raise self._run_failed(exc) from exc
        if outputs is None and batch_size is None and not self._fixed_one:
            feed = self.signature.fast_feed(inputs)  # arrays that already fit: no checks left
            if feed is not None:
                names = self._output_names
                return dict(zip(names, self._run(names, feed)))
        names = self._output_names if outputs is None else self._check_output_names(outputs)
        feed = self.signature.prepare(inputs, cast or self.cast)
        limit = self._batch_limit(feed, batch_size)
        if limit is None:
            return dict(zip(names, self._run(names, feed)))
        parts = [self._run(names, chunk) for chunk in self._split(feed, limit)]
        return {name: np.concatenate([p[i] for p in parts], axis=0)
                for i, name in enumerate(names)}

    __call__ = run

    def _run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.graph_device is not None:
            raise UsageError(
                f"{self.name}: this session captures a CUDA graph ({self.provider}.graph=1), "
                "which replays the buffers of its captured run, so run() would return stale "
                "results; run it through Model.bind() (edge-infer bench --io-binding)")
        try:
            if self._native is not None:
                # The feed is already checked against the signature, so onnxruntime's Python
                # wrapper (input-name validation, provider-fallback bookkeeping: ~5 us a call,
                # 10% of the digits CNN) is skipped for its compiled session.
                return self._native.run(names, feed, self._run_options)
            return self.session.run(names, feed, self._run_options)
        except Exception as exc:
            raise self._run_failed(exc) from exc

    def _run_failed(self, exc: BaseException) -> ModelRunError:
        return ModelRunError(f"onnxruntime failed to run {self.name}: {_first_line(exc)}")

    def _check_output_names(self, names: Sequence[str]) -> list[str]:
        for name in names:
            if name not in self.signature.output_names:
                raise InputError(f"the model has no output {name!r}; its outputs are "
                                 f"{', '.join(self.signature.output_names)}")
        return list(names)

    def _batch_limit(self, feed: Mapping[str, np.ndarray], batch_size: int | None) -> int | None:
        """How many samples per run, or None to run the feed whole."""
        if batch_size is None and not self._fixed_one:
            return None
        if batch_size is not None and batch_size < 1:
            raise InputError(f"batch size must be >= 1, found {batch_size}")
        specs = [self.signature.input(n) for n in feed]
        limit = 1 if self._fixed_one else batch_size
        if limit is None:
            return None
        sizes = {feed[s.name].shape[0] for s in specs if s.batch_like and feed[s.name].ndim}
        if not sizes or max(sizes) <= limit:
            return None
        if len(sizes) > 1 or not all(s.batch_like for s in specs):
            raise InputError("cannot split the batch: the inputs do not share one batch "
                             f"dimension (first dimensions {sorted(sizes)})")
        return limit

    @staticmethod
    def _split(feed: Mapping[str, np.ndarray], limit: int) -> Iterator[dict[str, np.ndarray]]:
        total = next(iter(feed.values())).shape[0]
        for start in range(0, total, limit):
            yield {name: array[start:start + limit] for name, array in feed.items()}

    def bind(self, batch_size: int = 1, dims: Mapping[str, int] | None = None) -> BoundRunner:
        """Buffers for repeated runs on one shape, bound once (see :mod:`.bound`): no
        allocation or conversion per call. ``dims`` sets symbolic dimensions besides the
        batch. A session that captures a CUDA graph gets buffers on its GPU."""
        from .bound import BoundRunner, GraphRunner

        kind = BoundRunner if self.graph_device is None else GraphRunner
        return kind(self, batch_size, dims)

    def classify(self, inputs: Any, k: int = 5, *, output: str | None = None,
                 batch_size: int | None = None) -> list[list[Prediction]]:
        """Top-``k`` labelled classes per sample, using the metadata's labels when present."""
        from .predictions import top_k

        name = output or self._output_names[0]
        result = self.run(inputs, outputs=[name], batch_size=batch_size)[name]
        return top_k(result, k, self.metadata.labels, self.metadata.output)
