"""Readable names in the exported graph: Keras' layer and variable names, not TensorFlow's.

tf2onnx names every tensor after the TensorFlow op that made it, inside the name scopes Keras 3
opens while tracing: the digits CNN's second kernel is
``cnn_1/conv2d_1_2/convolution/ReadVariableOp:0``, a layer called ``conv2d_1`` appears as
``conv2d_1_2``, and fused recurrent layers lose their scope entirely (``W0__78``,
``GRU__200``). In Netron, in onnxruntime's profiles and in the quantizer's options these are
the names a user has to read. This pass renames them after the Keras model:

- the model scope (``cnn_1/``) goes, and each layer scope is the layer's own name: Keras 3
  scopes a layer ``NAME`` as ``NAME_k`` (``conv2d_1`` -> ``conv2d_1_2``), so one trailing
  ``_k`` is removed when what is left is a layer of the model;
- an initializer that holds a Keras variable's values (compared as sorted values, so
  transposed kernels and reordered LSTM/GRU gates match) takes the variable's path:
  ``conv2d_1/kernel``, ``gru/gru_cell/recurrent_kernel``;
- a node tf2onnx left without a scope, but which reads a layer's variables, is named after that
  layer (``gru_1/GRU``), and the constants only it reads after its operator's input names
  (``lstm/B`` for an LSTM bias tf2onnx widened with zeros); one that reads no variable is named
  after the layer whose output it takes (``Squeeze__55`` after a fused LSTM: ``lstm/Squeeze``,
  its axes ``lstm/axes``);
- the ``:0`` tf2onnx appends to every first output is dropped.

Graph inputs and outputs keep their names (they are the runtime's contract). The pass checks
itself: if a layer scope read from a name disagrees with the layer whose variable an
initializer holds, the naming convention is not the one this pass knows, and nothing is renamed.

Measured with ``edge-infer pipeline cnn`` before and after (the digits ``cnn``, same weights):
the float32 file 88,925 -> 88,371 bytes, the static INT8 file 32,430 -> 30,365 bytes (36.5% ->
34.4% of float32), since the quantizer derives every name it adds from these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .simplify import consumers

_SUFFIX = re.compile(r"^(.*)_\d+$")


def _signature(array: np.ndarray) -> tuple[str, int, bytes]:
    """What identifies a variable's values whatever tf2onnx did to their order."""
    flat = np.asarray(array).ravel()
    return flat.dtype.str, flat.size, np.sort(flat).tobytes()


class _Namer:
    def __init__(self, model_name: str, layers: Sequence[str],
                 variables: Mapping[str, np.ndarray]) -> None:
        self.model_scope = re.compile(rf"^{re.escape(model_name)}(_\d+)?$")
        self.layers = set(layers)
        self.variables = dict(variables)
        self.conflict = False

    def layer_of(self, name: str) -> tuple[str | None, list[str]]:
        """The Keras layer a tf2onnx name is scoped in, and the rest of its path."""
        parts = name.split("/")
        if len(parts) < 3 or not self.model_scope.match(parts[0]):
            return None, parts
        match = _SUFFIX.match(parts[1])
        layer = match.group(1) if match else None
        if layer not in self.layers:
            return None, parts
        return layer, parts[2:]

    def plain(self, name: str) -> str:
        """The name with the model scope and the layer scope's suffix removed, no ``:0``."""
        layer, rest = self.layer_of(name)
        if layer:
            text = "/".join([layer, *rest])
        else:  # an op of the model itself (a mask, say): without the model scope
            parts = name.split("/")
            text = "/".join(parts[1:]) if len(parts) > 1 and self.model_scope.match(parts[0]) \
                else name
        return text[:-2] if text.endswith(":0") else text


def _variable_names(graph: Any, namer: _Namer) -> dict[str, str]:
    """Initializer name -> the path of the Keras variable whose values it holds."""
    from onnx import numpy_helper

    by_signature: dict[tuple, list[str]] = {}
    sizes = set()
    for path, value in namer.variables.items():
        signature = _signature(value)
        by_signature.setdefault(signature, []).append(path)
        sizes.add(signature[1])
    found: dict[str, str] = {}
    for init in graph.initializer:
        count = int(np.prod(init.dims)) if init.dims else 1
        layer, _ = namer.layer_of(init.name)
        if count not in sizes or (count == 1 and layer is None):  # a lone scalar says little
            continue
        paths = by_signature.get(_signature(numpy_helper.to_array(init)), [])
        if layer is not None:  # several layers may hold equal values (zero biases)
            mine = [p for p in paths if p.split("/")[0] == layer]
            if paths and not mine:
                namer.conflict = True  # the scope says one layer, the values another
            paths = mine
        if len(paths) == 1:
            found[init.name] = paths[0]
    return found


def readable_names(proto: Any, model_name: str, layers: Sequence[str],
                   variables: Mapping[str, np.ndarray]) -> int:
    """Rename the graph's nodes and tensors after the Keras model (see the module docstring).

    ``layers`` are the model's layer names and ``variables`` maps each variable's path
    (``conv2d/kernel``) to its values. Returns the number of names changed (0 when the graph's
    names do not follow the convention this pass knows)."""
    graph = proto.graph
    namer = _Namer(model_name, layers, variables)
    keep = {v.name for v in (*graph.input, *graph.output)}
    initializers = {init.name for init in graph.initializer}
    renames: dict[str, str] = {}
    for name, path in _variable_names(graph, namer).items():
        renames[name] = path
    if namer.conflict:
        return 0
    # The layer each initializer belongs to: its variable's, else the layer its name is
    # scoped in (a batch norm folded into a convolution keeps the convolution's scope).
    owner = {name: path.split("/")[0] for name, path in renames.items()}
    for name in initializers - set(owner):
        layer, _ = namer.layer_of(name)
        if layer is not None:
            owner[name] = layer

    readers = consumers(graph)
    node_names: dict[int, str] = {}
    made_by: dict[str, str] = {}  # tensor -> the layer of the node that writes it
    for index, node in enumerate(graph.node):
        if node.name and "/" not in node.name:
            # A node tf2onnx made without a scope: name it after the layer whose weights it
            # reads, and its outputs after it.
            owners = {owner[name] for name in node.input if name in owner}
            if len(owners) > 1 and len(node.input) > 1 and node.input[1] in owner:
                owners = {owner[node.input[1]]}  # the weights' layer (a folded batch norm's
                # bias keeps its own scope): Conv, Gemm, MatMul, LSTM, GRU take weights second
            if not owners and node.input and node.input[0] in made_by:
                # No weights: the layer whose output it reshapes (the Squeeze of a fused
                # LSTM's direction axis, a layout Transpose), so `info`, `--exclude` and the
                # profile's time per layer count it there.
                owners = {made_by[node.input[0]]}
            if len(owners) == 1:
                layer = owners.pop()
                node_names[index] = f"{layer}/{node.op_type}"
                for i, output in enumerate(node.output):
                    if output and output not in keep:
                        renames.setdefault(output,
                                           f"{layer}/{node.op_type}" + (f":{i}" if i else ""))
            else:
                node_names[index] = node.name
        else:
            node_names[index] = namer.plain(node.name) if node.name else node.name
        layer, _ = namer.layer_of(node.name) if "/" in node.name else (None, [])
        layer = layer or (node_names[index].split("/")[0] if "/" in node_names[index]
                          and node_names[index] != node.name else None)
        if layer is not None:
            _name_constants(node, layer, initializers, renames, owner, readers)
            made_by.update((output, layer) for output in node.output if output)

    names = {o for n in graph.node for o in n.output} | initializers | {v.name for v in graph.input}
    for name in names:
        if name and name not in keep and name not in renames:
            renames[name] = namer.plain(name)
    renames = _unique({k: v for k, v in renames.items() if k != v and k not in keep},
                      names, keep)
    seen: set[str] = set()
    for index, node in enumerate(graph.node):
        new = node_names[index]
        if new and new not in seen:
            node.name = new
        seen.add(node.name)
    rename_tensors(graph, renames)
    return len(renames)


def _name_constants(node: Any, layer: str, initializers: set[str], renames: dict[str, str],
                    owner: Mapping[str, str], readers: Mapping[str, list[Any]]) -> None:
    """Constants with no layer of their own (``W0__78``, an optimiser's
    ``ConvMulFusion_W_...``) that only ``node`` reads take ``LAYER/ROLE``, the role being the
    operator's input name (an LSTM's ``B``, a Conv's ``W``)."""
    from onnx import defs

    try:
        roles = [p.name for p in defs.get_schema(node.op_type, domain=node.domain).inputs]
    except Exception:  # an operator the installed onnx does not describe
        return
    for i, name in enumerate(node.input):
        if (name in initializers and name not in renames and name not in owner
                and i < len(roles) and [c.name for c in readers.get(name, [])] == [node.name]):
            renames[name] = f"{layer}/{roles[i]}"


def _unique(renames: dict[str, str], names: set[str], keep: set[str]) -> dict[str, str]:
    """Drop the renames that would give two tensors one name."""
    taken = (names - set(renames)) | keep
    out = {}
    for old, new in renames.items():
        if new in taken:
            continue
        taken.add(new)
        out[old] = new
    return out


def bypass(graph: Any, old: str, new: str) -> None:
    """Have every reader of tensor ``old`` read ``new`` instead, subgraphs included, once the
    node that wrote ``old`` is gone; the shape recorded for ``old`` goes with it (``new`` has
    its own)."""
    info = [v for v in graph.value_info if v.name != old]
    del graph.value_info[:]
    graph.value_info.extend(info)
    rename_tensors(graph, {old: new})


def rename_tensors(graph: Any, renames: Mapping[str, str]) -> None:
    """Rename tensors everywhere they are named, subgraphs (which may read outer names)
    included."""
    for init in graph.initializer:
        init.name = renames.get(init.name, init.name)
    for value in (*graph.value_info, *graph.output):  # a subgraph may output an outer name
        value.name = renames.get(value.name, value.name)
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renames.get(name, name)
        for i, name in enumerate(node.output):
            node.output[i] = renames.get(name, name)
        for attr in node.attribute:
            for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                rename_tensors(sub, renames)
