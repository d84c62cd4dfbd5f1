"""Which onnxruntime release a model file needs, and saying so when the installed one is older.

The runtime accepts onnxruntime 1.16 and later, and an edge device often has an older release
than the workstation that quantized the model. ``python benchmarks/ort_versions.py`` runs every
recipe's file of the zoo on onnxruntime 1.16.3 to 1.32.0 (2 cores of a Xeon with AVX-512 VNNI):

- a dynamic INT8 model with convolutions (``ConvInteger`` with int8 weights, what onnxruntime's
  quantizer writes): 1.16.3 to 1.23.2 refuse to load it ("Could not find an implementation for
  ConvInteger(10)"); 1.24.4 and later run it.
- static INT8 whose first convolution stays float32 (``export/qdq.py``: the thin convolution
  and its pool handed over in NHWC): 1.16.3 to 1.18.1 run it at 0.2x to 0.4x float32's speed
  at batch 64, since their optimiser moves the quantization above the float pool, which then
  runs on uint8 in NCHW; 1.19.2 and later at 1.5x to 1.6x (``cnn``, ``cifar_cnn``,
  ``conv_autoencoder``).
- float32, weight-only, and dynamic INT8 without convolutions load and keep their speed on
  every release tried.

What a file needs is found when it is made: from its operators (:func:`graph_requirements`,
which also serves files edge-infer did not make, when onnxruntime refuses one) and from what
the recipe did (the quantizer adds those), and written as ``edge_infer.requires``. Loading
checks it against the installed release: an unmet need to load adds the release to
onnxruntime's refusal; for an unmet need for speed, the runtime makes the session without the
onnxruntime optimizers the need names (``disable``), or, where it names none, warns
(``OlderRuntimeWarning``, ``errors.py``).

The static files' need names ``ReluQuantRewrite``, the rule of onnxruntime's level-1 rewrites
that folds a ``Relu`` into the ``QuantizeLinear`` after it: on 1.16.3 to 1.18.1 it runs before
the QDQ propagation and drops the ``Relu`` that ``qdq.pool_before_activation`` puts between the
float pool and the quantization, so the quantization moves above the pool. Without that rule
(on those releases only: from 1.19 the ``Relu`` is folded after the propagation) the same files
ran at 1.36x to 1.58x float32's speed at batch 64 on the `cnn` and `cifar_cnn`, 0.60x to 0.68x
on the `conv_autoencoder`, with outputs identical to the bit, on 1.16.3, 1.17.3 and 1.18.1
(against 0.23x to 0.37x as they are).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .records import Record, as_dict

if TYPE_CHECKING:
    from .modelfile import ModelInfo

KEY_REQUIRES = "edge_infer.requires"
LOADING, SPEED = "loading", "speed"
_INT8 = 3  # TensorProto.INT8


class Requirement(Record):  # a Record, not a dataclass: no cost on the cold-start path
    onnxruntime: str  # the first release that meets it, "1.24"
    purpose: str  # LOADING or SPEED
    why: str
    # onnxruntime optimizers whose disabling, on an older release, gives the speed back
    disable: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Requirement:
        return cls(str(d["onnxruntime"]), str(d["purpose"]), str(d["why"]),
                   tuple(str(name) for name in d.get("disable", ())))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``disable`` only when it names something)."""
        d = as_dict(self)
        d["disable"] = list(self.disable)
        return {k: v for k, v in d.items() if v or k != "disable"}

    def phrase(self) -> str:
        verb = "to load" if self.purpose == LOADING else "for its speed"
        return f"onnxruntime >= {self.onnxruntime} {verb} ({self.why})"


def release(version: str) -> tuple[int, ...]:
    """``"1.17.3"`` -> ``(1, 17, 3)``; a suffix (``1.24.0.dev20250101``, ``1.20.1+cu12``) is
    dropped with whatever does not start with digits."""
    parts = []
    for piece in version.split(".")[:3]:
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def graph_requirements(info: ModelInfo) -> list[Requirement]:
    """What a model's operators need, whoever made it."""
    inits = {i.name: i for i in info.initializers}
    found = []
    if any(n.op_type == "ConvInteger" and len(n.inputs) > 1 and n.inputs[1] in inits
           and inits[n.inputs[1]].data_type == _INT8 for n in info.nodes):
        found.append(Requirement("1.24", LOADING, "ConvInteger with int8 weights"))
    return found


def to_prop(requirements: list[Requirement]) -> str:
    return json.dumps([r.to_dict() for r in requirements])


def recorded(props: Mapping[str, str]) -> list[Requirement]:
    """The requirements a file records; a malformed entry is ignored (it only adds advice)."""
    text = props.get(KEY_REQUIRES)
    if not text:
        return []
    try:
        return [Requirement.from_dict(r) for r in json.loads(text)]
    except (ValueError, TypeError, KeyError):
        return []


def unmet(requirements: list[Requirement], installed: str,
          purpose: str | None = None) -> list[Requirement]:
    have = release(installed)
    return [r for r in requirements if have < release(r.onnxruntime)
            and (purpose is None or r.purpose == purpose)]


def requirements(info: ModelInfo) -> list[Requirement]:
    """What a file records and what its operators need, each once."""
    found = recorded(info.metadata)
    return found + [r for r in graph_requirements(info) if r not in found]


def loading_hint(info: ModelInfo, installed: str) -> str:
    """Words to add to onnxruntime's refusal of a model: the release it needs, when that is
    later than the installed one; else the release that made it, when later."""
    missing = unmet(requirements(info), installed, LOADING)
    if missing:
        return (f"; it needs {missing[0].phrase()}, and this is onnxruntime {installed}: "
                f"pip install -U onnxruntime")
    made = _made_with(info.metadata)
    if made and release(made) > release(installed):
        return (f"; it was made with onnxruntime {made}, and this is {installed}: a later "
                f"onnxruntime may run it (pip install -U onnxruntime)")
    return ""


def older_release_plan(props: Mapping[str, str], installed: str,
                       name: str) -> tuple[list[str], list[str]]:
    """For the needs of speed the installed release does not meet: the optimizers to disable
    where the file names some, and a warning line for each need that names none."""
    disable: list[str] = []
    lines = []
    for need in unmet(recorded(props), installed, SPEED):
        if need.disable:
            disable += [n for n in need.disable if n not in disable]
        else:
            lines.append(f"{name} needs {need.phrase()}; this is onnxruntime {installed}, where "
                         f"it may run slower than its float32 model (pip install -U onnxruntime)")
    return disable, lines


def _made_with(props: Mapping[str, str]) -> str | None:
    for key in ("edge_infer.quantization", "edge_infer.source"):
        try:
            record: Any = json.loads(props.get(key, ""))
        except ValueError:
            continue
        version = record.get("onnxruntime") if isinstance(record, dict) else None
        if isinstance(version, str):
            return version
    return None
