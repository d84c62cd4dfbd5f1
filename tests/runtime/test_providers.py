"""Provider short names, the auto order, options, and fallback."""

from __future__ import annotations

import warnings

import pytest

from edge_infer.runtime.errors import (ProviderFallbackWarning, ProviderUnavailableError,
                                       UnknownNameError)
from edge_infer.runtime.providers import PROVIDERS, lookup, resolve

GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
CPU_BUILD = ["CPUExecutionProvider"]


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


def test_auto_prefers_accelerators_and_ends_with_cpu():
    choice = resolve("auto", available_names=GPU_BUILD)
    assert choice.providers == GPU_BUILD
    assert resolve(None, available_names=CPU_BUILD).providers == CPU_BUILD


def test_auto_never_picks_an_on_request_provider():
    build = ["XnnpackExecutionProvider", "CPUExecutionProvider"]
    assert resolve("auto", available_names=build).providers == ["CPUExecutionProvider"]
    assert resolve(["xnnpack"], available_names=build).providers == build


def test_explicit_order_is_kept_and_cpu_closes_it():
    choice = resolve(["cuda", "tensorrt"], available_names=GPU_BUILD)
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
                     available_names=GPU_BUILD)
    trt, cuda, cpu = choice.options
    assert trt == {"trt_fp16_enable": True, "trt_engine_cache_path": "/tmp/trt",
                   "trt_engine_cache_enable": True}
    assert cuda == {"device_id": 1}
    assert cpu == {}


def test_options_for_an_unknown_provider_are_refused():
    with pytest.raises(UnknownNameError, match="'gpu'"):
        resolve(["cpu"], {"gpu": {"x": "1"}}, available_names=CPU_BUILD)


def test_every_provider_has_a_description():
    assert all(spec.description for spec in PROVIDERS.values())
