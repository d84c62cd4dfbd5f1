"""Device profiles: the registry, host detection, and the quantization plans."""

from __future__ import annotations

import pytest

from edge_infer.devices.profiles import PROFILES, QuantizationPlan, detect, get
from edge_infer.runtime.errors import UnknownNameError
from edge_infer.runtime.providers import PROVIDERS

AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
VNNI = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 asimddp\n"


@pytest.mark.parametrize("machine,cpuinfo,model,expected", [
    ("x86_64", AVX2, "", "x86-avx2"),
    ("x86_64", VNNI, "", "x86-vnni"),
    ("x86_64", "flags : avx2 avx_vnni\n", "", "x86-vnni"),
    ("aarch64", ARM, "Raspberry Pi 5 Model B Rev 1.0\x00", "rpi5"),
    ("aarch64", ARM, "Raspberry Pi 4 Model B Rev 1.4\x00", "rpi4"),
    ("aarch64", ARM, "NVIDIA Jetson Orin Nano Developer Kit\x00", "jetson-orin"),
    ("aarch64", ARM, "NVIDIA Jetson Nano Developer Kit\x00", "jetson-nano"),
    ("arm64", ARM, "", "arm64"),
])
def test_detect(machine, cpuinfo, model, expected):
    assert detect(machine, cpuinfo, model, cuda=False) == expected


def test_an_x86_machine_that_runs_cuda_is_a_cuda_target():
    """auto runs there on the GPU, where QDQ INT8 was slower than float32: fp16 is its recipe.
    Jetson boards are told apart by their device tree, as before."""
    assert detect("x86_64", VNNI, "", cuda=True) == "x86-cuda"
    assert get("x86-cuda").quantization.conv_method == "fp16"
    assert detect("aarch64", ARM, "NVIDIA Jetson Orin Nano Developer Kit\x00",
                  cuda=True) == "jetson-orin"


def test_a_cpu_wheel_does_not_run_cuda(monkeypatch):
    import onnxruntime

    from edge_infer.devices import profiles

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert profiles._runs_cuda() is False
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr("edge_infer.runtime.providers.load_failure",
                        lambda spec: "libcublasLt.so.13: cannot open shared object file")
    assert profiles._runs_cuda() is False  # the GPU wheel without CUDA's libraries
    monkeypatch.setattr("edge_infer.runtime.providers.load_failure", lambda spec: None)
    assert profiles._runs_cuda() is True


def test_host_resolves_to_a_registered_profile():
    assert get("host").name in PROFILES


def test_profiles_name_known_providers_and_sensible_plans():
    for profile in PROFILES.values():
        assert set(profile.providers) <= set(PROVIDERS), profile.name
        assert profile.providers[-1] == "cpu"
        plan = profile.quantization
        if "cuda" in profile.providers:
            assert plan.conv_method == "fp16"
        else:  # CPUs: never dynamic INT8 (ConvInteger is slow; dense models ran slower too)
            assert plan.conv_method == "static" and plan.dense_method == "weight-only"
        if profile.arch == "aarch64" and "cuda" not in profile.providers:
            assert plan.activation_type == "int8"
    assert get("x86-avx2").quantization.reduce_range
    assert not get("x86-vnni").quantization.reduce_range


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown device profile 'pi'.*host.*rpi4"):
        get("pi")


def test_plan_is_validated():
    with pytest.raises(ValueError, match="quantization method"):
        QuantizationPlan(conv_method="int4")
    with pytest.raises(ValueError, match="INT8 type"):
        QuantizationPlan(activation_type="int4")


def test_devices_command_marks_the_host():
    import json

    from click.testing import CliRunner

    from edge_infer.runtime.cli import cli

    runner = CliRunner()
    table = runner.invoke(cli, ["devices"])
    assert table.exit_code == 0, table.output
    host = detect()
    assert f"* {host} " in table.output and "rpi5" in table.output
    data = json.loads(runner.invoke(cli, ["devices", "-f", "json"]).output)
    assert data["host"] == host
    assert {p["name"] for p in data["profiles"]} == set(PROFILES)
    assert data["profiles"][0]["quantization"]["conv_method"] in ("static", "fp16")
