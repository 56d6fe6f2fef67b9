"""A piper voice model with its 1-D convolutions run as 2-D ones: the same numbers, less CPU.

Most of a piper voice's time goes into the 1-D convolutions of its HiFi-GAN decoder. onnxruntime
runs 1-D convolutions through a generic path, but has blocked-layout (NCHWc) kernels for 2-D
ones. Rewritten as 2-D convolutions over a height of 1 (weights [out, in, k] -> [out, in, 1, k];
kernel, strides, dilations and pads given a leading 1 or 0), they compute exactly the same sums,
faster: about 15-20 % less CPU per sentence here (the synthesized audio differs by about 1e-5).
The tensors between two rewritten convolutions stay 4-D through element-wise operations (the
decoder's residual adds and activations), so they are not reshaped back and forth.

The rewrite runs in a child process (`python -m wyoming_tts.conv2d MODEL OUT`) that writes the
new model to a file the service then loads by its path: the memory the rewrite takes (a few
copies of the model) goes back to the system when the child exits, and onnxruntime loading a
file keeps less of it than loading the same bytes from memory (about 60 MB here). The file is
an anonymous in-memory one (memfd), gone once the session is made, so it needs no writable
disk (a read-only root, a small /tmp); where there is none, a temporary directory.
It needs the `onnx` package; without it (or for a model it does not fit) the voice runs as it is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)
# The child's exit status when there is nothing to rewrite (or no onnx package).
_NOTHING_TO_DO = 3
_CHILD_TIMEOUT = 300.0

_CONVS = ("Conv", "ConvTranspose")
# Element-wise operations that keep a 4-D tensor 4-D when all their other inputs are scalars.
_ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "LeakyRelu", "Relu", "Tanh", "Sigmoid"})
_AXES = "wyoming_tts_conv2d_axes"  # the height axis, inserted and removed


@contextlib.contextmanager
def rewritten_model(model_path: Path) -> Iterator[Path | None]:
    """Blocking: the path of the rewritten model while the context lasts (load it then); None
    if the model is to run as it is (the reason is logged)."""
    try:
        fd = os.memfd_create(f"{model_path.name}.conv2d")
    except (AttributeError, OSError):  # not Linux, or not allowed here
        with tempfile.TemporaryDirectory(prefix="wyoming-tts-voice-") as folder:
            yield rewritten_file(model_path, Path(folder) / model_path.name)
        return
    try:
        yield rewritten_file(model_path, Path(f"/proc/self/fd/{fd}"), pass_fds=(fd,))
    finally:
        os.close(fd)


def rewritten_file(model_path: Path, out: Path, pass_fds: tuple[int, ...] = ()) -> Path | None:
    """Blocking: `out` once a child process has written the rewritten model there; None if the
    model is to run as it is (the reason is logged)."""
    command = [sys.executable, "-m", __name__, str(model_path), str(out)]
    try:
        child = subprocess.run(
            command, capture_output=True, text=True, timeout=_CHILD_TIMEOUT, check=False, pass_fds=pass_fds
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        _LOGGER.warning("Voice %s runs without the faster convolutions: %s", model_path.name, err)
        return None
    if child.returncode == 0 and out.exists() and out.stat().st_size > 0:
        return out
    if child.returncode == _NOTHING_TO_DO:
        _LOGGER.info("Voice %s runs as it is: %s", model_path.name, child.stdout.strip())
    else:
        why = (child.stderr.strip().splitlines() or [f"exit status {child.returncode}"])[-1]
        _LOGGER.warning("Voice %s runs without the faster convolutions: %s", model_path.name, why)
    return None


def main(argv: list[str]) -> int:
    """`python -m wyoming_tts.conv2d MODEL OUT`: 0 if OUT was written, 3 if there was nothing to do."""
    model_path, out = Path(argv[0]), Path(argv[1])
    try:
        import onnx  # noqa: F401 - only to tell its absence apart
    except ImportError:
        print("the onnx package is not installed")
        return _NOTHING_TO_DO
    model = rewritten(model_path)
    if model is None:
        print("no 1-D convolution to rewrite")
        return _NOTHING_TO_DO
    out.write_bytes(model)
    return 0


def rewritten(model_path: Path) -> bytes | None:
    """The model with its 1-D convolutions as 2-D ones, serialized; None if it cannot be done
    (no `onnx` package, or nothing to rewrite)."""
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(str(model_path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    # Squeeze and Unsqueeze take their axes as an input from opset 13 (piper exports 15).
    if opset < 13 or not _rewrite(model.graph):
        return None
    return bytes(model.SerializeToString())


def _rewrite(graph: Any) -> int:
    """Rewrite `graph` in place; returns how many convolutions were rewritten."""
    import numpy as np
    from onnx import helper, numpy_helper

    initializers = {i.name: i for i in graph.initializer}
    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    # A weight also read by anything but a convolution's weight input keeps its shape.
    shared = {
        name
        for n in graph.node
        for position, name in enumerate(n.input)
        if not (n.op_type in _CONVS and position == 1)
    }
    reshaped: set[str] = set()

    def elements(name: str) -> int | None:
        if name in initializers:
            return int(np.prod(initializers[name].dims))
        if name in constants and constants[name].attribute:
            value = helper.get_attribute_value(constants[name].attribute[0])
            return int(np.prod(value.dims)) if hasattr(value, "dims") else None
        return None

    nodes: list[Any] = []
    as_4d: dict[str, str] = {}  # 3-D tensor name -> its 4-D twin
    only_4d: set[str] = set()  # 3-D names not produced yet (only their 4-D twin is)

    def four_d(name: str) -> str:
        if name not in as_4d:
            as_4d[name] = f"{name}/4d"
            nodes.append(helper.make_node("Unsqueeze", [name, _AXES], [as_4d[name]]))
        return as_4d[name]

    def lifted_node(node: Any, inputs: list[str], attributes: dict[str, Any]) -> None:
        """`node` on 4-D inputs; its output exists only as a 4-D twin until a consumer needs it."""
        output = node.output[0]
        as_4d[output] = f"{output}/4d"
        nodes.append(helper.make_node(node.op_type, inputs, [as_4d[output]], name=node.name, **attributes))
        only_4d.add(output)

    def three_d(name: str) -> None:
        if name in only_4d:
            nodes.append(helper.make_node("Squeeze", [as_4d[name], _AXES], [name]))
            only_4d.discard(name)

    count = 0
    for node in graph.node:
        weight = initializers.get(node.input[1]) if node.op_type in _CONVS and len(node.input) > 1 else None
        one_d = weight is not None and (len(weight.dims) == 3 or weight.name in reshaped)
        if weight is not None and one_d and weight.name not in shared:
            if weight.name not in reshaped:  # a weight two convolutions share is reshaped once
                array = numpy_helper.to_array(weight)
                weight.CopyFrom(numpy_helper.from_array(array[:, :, None, :], weight.name))
                reshaped.add(weight.name)
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            for key in ("kernel_shape", "strides", "dilations", "output_padding", "output_shape"):
                if key in attributes:
                    attributes[key] = [1, *attributes[key]]
            if "pads" in attributes:
                begin, end = attributes["pads"]
                attributes["pads"] = [0, begin, 0, end]
            lifted_node(node, [four_d(node.input[0]), *node.input[1:]], attributes)
            count += 1
            continue
        if (
            node.op_type in _ELEMENTWISE
            and len(node.output) == 1
            and any(i in only_4d for i in node.input)
            and all(i in as_4d or elements(i) == 1 for i in node.input)
        ):
            inputs = [as_4d.get(i, i) for i in node.input]
            lifted_node(node, inputs, {a.name: helper.get_attribute_value(a) for a in node.attribute})
            continue
        for name in node.input:
            three_d(name)
        nodes.append(node)
    for output in graph.output:
        three_d(output.name)
    if not count:
        return 0
    graph.initializer.append(numpy_helper.from_array(np.array([2], dtype=np.int64), _AXES))
    del graph.node[:]
    graph.node.extend(nodes)
    # Shapes recorded for tensors that are now only 4-D twins would be wrong: drop them.
    produced = {o for n in graph.node for o in n.output}
    kept = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return count


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
