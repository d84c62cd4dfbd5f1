"""Provider short names, the auto order, options, and fallback."""

from __future__ import annotations

import sys
import warnings

import pytest

from edge_infer.runtime.errors import (ProviderFallbackWarning, ProviderUnavailableError,
                                       UnknownNameError)
from edge_infer.runtime.providers import PROVIDERS, lookup, resolve, without_graph_capture

GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
CPU_BUILD = ["CPUExecutionProvider"]


def _loads(spec):
    """Every library loads (the real check depends on the machine's onnxruntime and CUDA)."""
    return None


@pytest.mark.parametrize("short,ort_name", [
    ("cpu", "CPUExecutionProvider"), ("cuda", "CUDAExecutionProvider"),
    ("tensorrt", "TensorrtExecutionProvider"), ("openvino", "OpenVINOExecutionProvider"),
    ("xnnpack", "XnnpackExecutionProvider"), ("acl", "ACLExecutionProvider"),
    ("armnn", "ArmNNExecutionProvider"), ("coreml", "CoreMLExecutionProvider"),
    ("dml", "DmlExecutionProvider"), ("qnn", "QNNExecutionProvider")])
def test_short_names(short, ort_name):
    assert lookup(short).ort_name == ort_name
    assert lookup(short.upper()).ort_name == ort_name
    assert lookup(ort_name).short == short


def test_unknown_provider_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown execution provider 'tpu'; known: auto, "):
        lookup("tpu")
    with pytest.raises(UnknownNameError, match=r"'cuad' \(did you mean 'cuda'\?\); known"):
        lookup("cuad")


@pytest.mark.parametrize("name,hint", [
    ("mnist", " (did you mean 'keras:mnist'?)"),       # a missing prefix
    ("rpi", " (did you mean 'rpi4' or 'rpi5'?)"),      # the start of several names
    ("rpi6", " (did you mean 'rpi4' or 'rpi5'?)"),     # a typo as close to two names
    ("digts", " (did you mean 'digits'?)"),
    ("Digits", " (did you mean 'digits'?)"),
    ("imagenet", ""),                                  # nothing close: no guess
    ("", ""),
])
def test_did_you_mean(name, hint):
    from edge_infer.runtime.errors import did_you_mean

    assert did_you_mean(name, ["digits", "keras:mnist", "keras:fashion_mnist", "rpi4",
                               "rpi5"]) == hint


def test_auto_prefers_accelerators_and_ends_with_cpu():
    choice = resolve("auto", available_names=GPU_BUILD, check=_loads)
    assert choice.providers == GPU_BUILD
    assert resolve(None, available_names=CPU_BUILD).providers == CPU_BUILD


def test_auto_never_picks_an_on_request_provider():
    build = ["XnnpackExecutionProvider", "CPUExecutionProvider"]
    assert resolve("auto", available_names=build).providers == ["CPUExecutionProvider"]
    assert resolve(["xnnpack"], available_names=build).providers == build


def test_explicit_order_is_kept_and_cpu_closes_it():
    choice = resolve(["cuda", "tensorrt"], available_names=GPU_BUILD, check=_loads)
    assert choice.providers == ["CUDAExecutionProvider", "TensorrtExecutionProvider",
                                "CPUExecutionProvider"]


def test_missing_provider_warns_once_naming_what_is_available():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        choice = resolve(["cuda"], available_names=CPU_BUILD)
    assert choice.providers == CPU_BUILD and choice.missing == ["cuda"]
    assert len(caught) == 1 and caught[0].category is ProviderFallbackWarning
    assert "available: cpu" in str(caught[0].message)


def test_strict_turns_the_fallback_into_an_error():
    with pytest.raises(ProviderUnavailableError, match="tensorrt is not available"):
        resolve(["tensorrt"], strict=True, available_names=CPU_BUILD)


def test_friendly_options_are_translated_and_coerced():
    choice = resolve(["tensorrt", "cuda"], {"tensorrt": {"fp16": "true", "cache": "/tmp/trt"},
                                            "cuda": {"device_id": "1"}},
                     available_names=GPU_BUILD, check=_loads)
    trt, cuda, cpu = choice.options
    assert trt == {"trt_fp16_enable": True, "trt_engine_cache_path": "/tmp/trt",
                   "trt_engine_cache_enable": True}
    assert cuda == {"device_id": 1, "use_tf32": 0}  # TF32 off unless asked for
    assert cpu == {}


def test_cuda_runs_float32_in_float32_unless_tf32_is_asked_for():
    """onnxruntime's CUDA provider defaults to TF32 on Ampere and newer: 3.2e-4 off the CPU's
    output on the digits cnn (H100), more than the 1e-4 parity the export proves."""
    def cuda_options(options):
        return resolve(["cuda"], options, available_names=GPU_BUILD, check=_loads).options[0]

    assert cuda_options(None) == {"use_tf32": 0}
    assert cuda_options({"cuda": {"tf32": "true"}}) == {"use_tf32": True}
    assert cuda_options({"cuda": {"use_tf32": "1"}}) == {"use_tf32": 1}


def test_options_for_an_unknown_provider_are_refused():
    with pytest.raises(UnknownNameError, match="'gpu'"):
        resolve(["cpu"], {"gpu": {"x": "1"}}, available_names=CPU_BUILD)


def test_every_provider_has_a_description():
    assert all(spec.description for spec in PROVIDERS.values())


# -- a provider the build lists but whose library cannot load ----------------------------------

TRT_MISSING = "libnvinfer.so.10: cannot open shared object file: No such file or directory"


def _no_tensorrt(spec):
    return TRT_MISSING if spec.short == "tensorrt" else None


def test_auto_leaves_out_a_provider_whose_library_cannot_load():
    """onnxruntime-gpu lists TensorRT whether or not TensorRT is installed; auto must not hand
    it to onnxruntime (which prints errors to stdout and retries)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto is silent about it
        choice = resolve("auto", available_names=GPU_BUILD, check=_no_tensorrt)
    assert choice.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_asking_for_an_unloadable_provider_says_why_in_one_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        choice = resolve(["tensorrt", "cuda"], available_names=GPU_BUILD, check=_no_tensorrt)
    assert choice.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choice.missing == ["tensorrt"]
    assert len(caught) == 1 and caught[0].category is ProviderFallbackWarning
    message = str(caught[0].message)
    assert "tensorrt is in this onnxruntime build but cannot load: libnvinfer.so.10" in message
    assert "install TensorRT" in message and message.endswith("falling back to cuda, cpu")
    with pytest.raises(ProviderUnavailableError, match="cannot load: libnvinfer"):
        resolve(["tensorrt"], strict=True, available_names=GPU_BUILD, check=_no_tensorrt)


def test_the_unavailable_message_does_not_offer_an_unloadable_provider():
    with pytest.warns(ProviderFallbackWarning, match=r"available: cuda, cpu\)"):
        resolve(["openvino"], available_names=GPU_BUILD, check=_no_tensorrt)


def _capi_with(tmp_path, libraries):
    """A copy of onnxruntime's capi folder layout: its real shared helper library, and
    provider libraries made from it (``rename`` swaps one of its dependencies for a name the
    loader cannot find, which is how a missing TensorRT looks)."""
    import os

    import onnxruntime

    shared = os.path.join(os.path.dirname(onnxruntime.__file__), "capi",
                          "libonnxruntime_providers_shared.so")
    if not sys.platform.startswith("linux") or not os.path.exists(shared):
        pytest.skip("needs a Linux onnxruntime with its provider helper library")
    data = open(shared, "rb").read()
    (tmp_path / "libonnxruntime_providers_shared.so").write_bytes(data)
    for name, rename in libraries.items():
        body = data
        if rename:
            old, new = rename
            assert data.count(old) == 1 and len(old) == len(new)
            body = data.replace(old, new)
        (tmp_path / f"libonnxruntime_providers_{name}.so").write_bytes(body)
    return str(tmp_path)


def test_library_check_reports_the_loaders_reason(tmp_path):
    from edge_infer.runtime.providers import _library_failure

    capi = _capi_with(tmp_path, {"cuda": None,
                                 "tensorrt": (b"libgcc_s.so.1\x00", b"libnvinfer.so\x00")})
    assert _library_failure(capi, "cuda") is None  # loads
    why = _library_failure(capi, "tensorrt")
    assert why == "libnvinfer.so: cannot open shared object file: No such file or directory"
    assert _library_failure(capi, "openvino") is None  # not a separate library here


def test_library_check_reports_a_damaged_library(tmp_path):
    from edge_infer.runtime.providers import _library_failure

    capi = _capi_with(tmp_path, {})
    (tmp_path / "libonnxruntime_providers_cuda.so").write_bytes(b"not a library")
    why = _library_failure(capi, "cuda")
    assert why is not None and ("ELF" in why or "too short" in why), why


def test_model_keeps_onnxruntimes_fallback_notice_off_stdout(monkeypatch, capsys, models):
    """onnxruntime print()s "EP Error ... Falling back" when a provider fails to start; on
    stdout it would corrupt `bench --format json`."""
    import onnxruntime as ort

    from edge_infer.runtime import Model

    path = models.classifier()
    real = ort.InferenceSession

    def noisy(*args, **kwargs):
        print("*************** EP Error ***************")
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", noisy)
    Model(path, providers=["cpu"])
    out, err = capsys.readouterr()
    assert out == "" and "EP Error" in err


def test_cuda_libraries_from_nvidias_wheels_are_preloaded(tmp_path, monkeypatch, capsys):
    """With `pip install onnxruntime-gpu[cuda,cudnn]` the CUDA libraries sit in site-packages,
    where the loader does not look: onnxruntime's preload_dlls() loads them, as its docs say,
    and the provider library then loads. What preload_dlls prints stays off stdout."""
    import ctypes
    import importlib.util

    import onnxruntime

    from edge_infer.runtime.providers import _library_failure

    (tmp_path / "libonnxruntime_providers_cuda.so").write_bytes(b"stand-in")
    calls = []

    def fake_cdll(path, mode=0):
        if path.endswith("providers_cuda.so") and not calls:
            raise OSError(f"{path}: libcublasLt.so.13: cannot open shared object file")
        return object()

    def fake_preload():
        print("Failed to load libcufft.so.12")
        calls.append("preload")

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(ctypes, "CDLL", fake_cdll)
    monkeypatch.setattr(onnxruntime, "preload_dlls", fake_preload, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "nvidia" else real_find_spec(name, *a))
    assert _library_failure(str(tmp_path), "cuda") is None
    assert calls == ["preload"] and capsys.readouterr().out == ""


def test_without_nvidias_wheels_the_loaders_reason_stands(tmp_path, monkeypatch):
    import ctypes
    import importlib.util

    import onnxruntime

    from edge_infer.runtime.providers import _library_failure

    (tmp_path / "libonnxruntime_providers_cuda.so").write_bytes(b"stand-in")

    def fake_cdll(path, mode=0):
        if path.endswith("providers_cuda.so"):
            raise OSError(f"{path}: libcublasLt.so.13: cannot open shared object file")
        return object()

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(ctypes, "CDLL", fake_cdll)
    monkeypatch.setattr(onnxruntime, "preload_dlls", lambda: pytest.fail("no wheels to load"),
                        raising=False)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "nvidia" else real_find_spec(name, *a))
    assert _library_failure(str(tmp_path), "cuda") == ("libcublasLt.so.13: cannot open shared "
                                                       "object file")


def test_graph_capture_options_by_either_name_and_their_removal():
    choice = resolve(["tensorrt", "cuda"], {"tensorrt": {"graph": "1"},
                                            "cuda": {"graph": "true", "device_id": "1"}},
                     available_names=GPU_BUILD, check=_loads)
    trt, cuda, _ = choice.options
    assert trt == {"trt_cuda_graph_enable": 1}
    assert cuda == {"enable_cuda_graph": True, "device_id": 1, "use_tf32": 0}
    given = {"cuda": {"graph": "1", "tf32": "1"}, "tensorrt": {"trt_cuda_graph_enable": "1",
                                                             "fp16": "1"}, "cpu": {}}
    assert without_graph_capture(given) == {"cuda": {"tf32": "1"}, "tensorrt": {"fp16": "1"},
                                            "cpu": {}}
    assert given["cuda"] == {"graph": "1", "tf32": "1"}  # not changed in place
