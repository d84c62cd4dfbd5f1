"""Device profiles: what a target runs best, as typed data in a registry.

A profile says which execution providers the target has and which quantization suits it, so
``edge-infer quantize --device rpi5`` (and ``auto``) pick activation and weight types the way
onnxruntime's own guidance does:

- x86 with VNNI (AVX512-VNNI or AVX-VNNI): QDQ with uint8 activations and int8 weights (U8S8),
  whose VNNI kernels add the products exactly.
- x86 with AVX2 only: U8S8 with ``reduce_range`` (7-bit weights). Without VNNI the U8S8 kernel
  multiplies with ``vpmaddubsw``, whose 16-bit pairwise sums can saturate on 8-bit weights.
- arm64 (Raspberry Pi): int8 activations and weights (S8S8), the symmetric scheme the arm64
  kernels and TFLite/XNNPACK use.
- Jetson and other CUDA targets: float16, which TensorRT and the CUDA provider run natively;
  INT8 there needs TensorRT's own calibration, not onnxruntime's CPU-tuned QDQ.

``detect()`` names the profile of the machine it runs on from ``/proc/cpuinfo``, the device
tree, and, on x86, whether onnxruntime can run CUDA here (a GPU build whose CUDA libraries
load): such a machine runs ``auto`` on the GPU, where QDQ INT8 ran at half the speed of
float32 (MobileNetV2 on an H100), so its recipe is fp16.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from edge_infer.runtime.errors import UnknownNameError

METHODS = ("static", "dynamic", "weight-only", "fp16")
INT8_TYPES = ("uint8", "int8")


@dataclass(frozen=True)
class QuantizationPlan:
    """The recipe a target wants: one for convolutional models, one for the rest.

    On CPUs the rest get weight-only INT8 (int8 weights, float32 compute): on the zoo's dense
    and recurrent models dynamic INT8 ran at 0.61x to 0.79x of float32's speed at batch 1 on a
    VNNI Xeon, could not quantize a GRU, and its files were smaller only on the lstm (29.9%
    against 31.8%); weight-only runs the float32 graph once loaded
    (``benchmarks/weight_only.py``)."""

    conv_method: str = "static"
    dense_method: str = "weight-only"
    activation_type: str = "uint8"
    weight_type: str = "int8"
    reduce_range: bool = False

    def __post_init__(self) -> None:
        for value in (self.conv_method, self.dense_method):
            if value not in METHODS:
                raise ValueError(f"quantization method must be one of {METHODS}, found {value}")
        for value in (self.activation_type, self.weight_type):
            if value not in INT8_TYPES:
                raise ValueError(f"INT8 type must be one of {INT8_TYPES}, found {value}")

    def method_for(self, convolutional: bool) -> str:
        return self.conv_method if convolutional else self.dense_method


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    arch: str  # platform.machine() of the target: x86_64 or aarch64
    providers: tuple[str, ...]  # edge-infer provider names, best first
    quantization: QuantizationPlan
    cores: int | None = None
    memory_gib: float | None = None

    def summary(self) -> str:
        q = self.quantization
        code = {"uint8": "U8", "int8": "S8"}
        extra = ", reduce_range" if q.reduce_range else ""
        return (f"conv models: {q.conv_method}, others: {q.dense_method}; INT8 "
                f"{code[q.activation_type]}{code[q.weight_type]}{extra}; providers "
                f"{', '.join(self.providers)}")


PROFILES: dict[str, DeviceProfile] = {}


def register(profile: DeviceProfile) -> DeviceProfile:
    PROFILES[profile.name] = profile
    return profile


register(DeviceProfile(
    "x86-vnni", "x86-64 CPU with AVX512-VNNI or AVX-VNNI (Ice Lake+, Zen 4+)", "x86_64",
    ("cpu",), QuantizationPlan()))
register(DeviceProfile(
    "x86-avx2", "x86-64 CPU with AVX2 and no VNNI (Haswell to Comet Lake, Zen 1-3)", "x86_64",
    ("cpu",), QuantizationPlan(reduce_range=True)))
register(DeviceProfile(
    "x86-cuda", "x86-64 workstation or server with an NVIDIA GPU", "x86_64",
    ("tensorrt", "cuda", "cpu"), QuantizationPlan(conv_method="fp16", dense_method="fp16")))
register(DeviceProfile(
    "rpi4", "Raspberry Pi 4: 4x Cortex-A72, arm64, no dot-product instructions", "aarch64",
    ("xnnpack", "cpu"), QuantizationPlan(activation_type="int8"), cores=4, memory_gib=4))
register(DeviceProfile(
    "rpi5", "Raspberry Pi 5: 4x Cortex-A76, arm64 with dot-product instructions", "aarch64",
    ("xnnpack", "cpu"), QuantizationPlan(activation_type="int8"), cores=4, memory_gib=8))
register(DeviceProfile(
    "arm64", "other arm64 boards and servers (Graviton, Ampere, RK3588)", "aarch64",
    ("xnnpack", "acl", "cpu"), QuantizationPlan(activation_type="int8")))
register(DeviceProfile(
    "jetson-nano", "Jetson Nano: Maxwell GPU, 4x Cortex-A57, JetPack 4", "aarch64",
    ("tensorrt", "cuda", "cpu"), QuantizationPlan(conv_method="fp16", dense_method="fp16"),
    cores=4, memory_gib=4))
register(DeviceProfile(
    "jetson-orin", "Jetson Orin Nano/NX/AGX: Ampere GPU, Cortex-A78AE, JetPack 5-6", "aarch64",
    ("tensorrt", "cuda", "cpu"), QuantizationPlan(conv_method="fp16", dense_method="fp16"),
    cores=6, memory_gib=8))


def get(name: str) -> DeviceProfile:
    if name == "host":
        return PROFILES[detect()]
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownNameError("device profile", name, ("host", *PROFILES)) from None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def _runs_cuda() -> bool:
    """Whether this onnxruntime can start its CUDA provider (a CPU wheel answers at once)."""
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return False
    from edge_infer.runtime.providers import PROVIDERS, load_failure

    return load_failure(PROVIDERS["cuda"]) is None


def detect(machine: str | None = None, cpuinfo: str | None = None,
           device_model: str | None = None, cuda: bool | None = None) -> str:
    """The profile name of this machine (arguments let tests describe another one)."""
    machine = (machine or platform.machine()).lower()
    cpuinfo = _read("/proc/cpuinfo") if cpuinfo is None else cpuinfo
    if device_model is None:
        device_model = _read("/proc/device-tree/model")
    if machine in ("aarch64", "arm64"):
        model = device_model.lower()
        if "jetson" in model or "nvidia" in model:
            return "jetson-nano" if "nano" in model and "orin" not in model else "jetson-orin"
        if "raspberry pi 5" in model:
            return "rpi5"
        if "raspberry pi 4" in model:
            return "rpi4"
        return "arm64"
    if _runs_cuda() if cuda is None else cuda:
        return "x86-cuda"
    flags = _cpu_flags(cpuinfo)
    if {"avx512_vnni", "avx_vnni", "avx512vnni"} & flags:
        return "x86-vnni"
    return "x86-avx2"
