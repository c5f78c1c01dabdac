"""Model against ONNX Runtime and the onnx package (the oracles), misuse,
threads."""

import os
import threading

import numpy as np
import pytest

import pattern_engine as pe
from conftest import MODELS, in_threads

onnx = pytest.importorskip("onnx", reason="the onnx package describes the models")
ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime is the reference")

NAMES = ["toy_mlp", "toy_cnn", "pattern_cnn", "pattern_lstm"]


def path_of(name):
    return os.path.join(MODELS, f"{name}.onnx")


def loadable(name):
    try:
        pe.Model(path_of(name)).close()
    except pe.Error as exc:
        if exc.name == "EUNSUPPORTED" and "no ONNX importer" in str(exc):
            pytest.skip(str(exc))
        raise


@pytest.mark.parametrize("name", NAMES)
def test_run_matches_onnxruntime(name):
    loadable(name)
    x = np.load(os.path.join(MODELS, f"{name}.inputs.npy")).astype(np.float32)
    sess = ort.InferenceSession(path_of(name), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with pe.Model(path_of(name)) as m:
        got = m.run(x)
        one = m.run(x[0])
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(one, got[:1])


@pytest.mark.parametrize("name", NAMES)
def test_description_matches_the_onnx_file(name):
    loadable(name)
    proto = onnx.load(path_of(name))
    with pe.Model(path_of(name)) as m:
        gi = proto.graph.input[0]
        assert m.inputs[0]["name"] == gi.name
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in gi.type.tensor_type.shape.dim]
        assert list(m.inputs[0]["shape"])[1:] == dims[1:]
        assert m.inputs[0]["shape"][0] is None
        assert [o["name"] for o in m.outputs] == [o.name for o in proto.graph.output]
        assert m.metadata == {p.key: p.value for p in proto.metadata_props}
        assert m.opset == max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        assert m.producer.startswith(proto.producer_name)


def test_misuse_raises():
    loadable("toy_cnn")
    m = pe.Model(path_of("toy_cnn"))
    x = np.load(os.path.join(MODELS, "toy_cnn.inputs.npy")).astype(np.float32)
    with pytest.raises(TypeError):
        m.run(x.astype(np.float64))
    with pytest.raises(TypeError):
        m.run(x.tolist())
    with pytest.raises(ValueError):
        m.run(x[:, :, :31])
    with pytest.raises(ValueError):
        m.run(x.reshape(-1))
    with pytest.raises(ValueError):
        m.run(x[:0])
    # A strided view is copied, not misread.
    wide = np.zeros((x.shape[0], x.shape[1], x.shape[2] * 2), np.float32)
    wide[:, :, ::2] = x
    view = wide[:, :, ::2]
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(m.run(view), m.run(x))
    m.close()
    m.close()
    with pytest.raises(pe.Error) as info:
        m.run(x)
    assert info.value.name == "ESTATE"


def test_bad_files_raise_with_the_library_message(tmp_path):
    with pytest.raises(pe.Error) as info:
        pe.Model(tmp_path / "missing.onnx")
    assert info.value.name in ("EIO", "ENOENT", "EUNSUPPORTED")
    assert "missing.onnx" in str(info.value)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07\x12\x03not a model")
    with pytest.raises(pe.Error) as info:
        pe.Model(junk)
    assert info.value.code < 0 and "junk.onnx" in str(info.value)
    with pytest.raises(pe.Error) as info:
        pe.Model(tmp_path / "model.engine")
    assert info.value.name == "EUNSUPPORTED" and "TensorRT is not in this build" in str(info.value)
    with pytest.raises(pe.Error) as info:
        pe.Model(path_of("toy_cnn"), backend="tensorrt")
    assert info.value.name == "EUNSUPPORTED"


def test_threads_share_one_model():
    """Documented thread-safe: runs from several threads go concurrently,
    each with its own context, and give the serial results."""
    loadable("pattern_cnn")
    x = np.load(os.path.join(MODELS, "pattern_cnn.inputs.npy")).astype(np.float32)
    with pe.Model(path_of("pattern_cnn")) as m:
        expected = [m.run(x[i:i + 8]) for i in range(0, len(x), 8)]
        results, mismatches = {}, []

        def work(t):
            for _ in range(5):
                for j, i in enumerate(range(0, len(x), 8)):
                    if not np.array_equal(m.run(x[i:i + 8]), expected[j]):
                        mismatches.append((t, j))
            results[t] = True

        assert in_threads(work, range(4)) == []
    assert not mismatches and len(results) == 4


def test_engine_runs_a_model_file(cli):
    import subprocess
    import pandas as pd
    from conftest import SAMPLE
    loadable("toy_cnn")
    ours = pe.replay(SAMPLE, model=pe.Model(path_of("toy_cnn")))
    out = subprocess.run([cli, "replay", "--quiet", "--ticks", SAMPLE, "--model",
                          path_of("toy_cnn")], check=True, capture_output=True,
                         text=True).stdout
    theirs = pd.read_csv(pd.io.common.StringIO(out), keep_default_na=False)
    assert list(ours["id"]) == list(theirs["id"])
    assert list(ours["score"]) == [float(s) for s in theirs["score"]]
    assert (ours["pattern"] == "model:spike").any()


def test_close_while_other_threads_run():
    """close() waits for runs in progress; later runs raise ESTATE; none
    crashes or reads freed memory."""
    loadable("pattern_cnn")
    x = np.load(os.path.join(MODELS, "pattern_cnn.inputs.npy")).astype(np.float32)
    m = pe.Model(path_of("pattern_cnn"))
    expected = m.run(x)
    outcomes, started = [], threading.Barrier(5)

    def work():
        started.wait()
        try:
            for _ in range(200):
                y = m.run(x)
                outcomes.append(np.array_equal(y, expected))
        except pe.Error as exc:
            outcomes.append(exc.name)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    started.wait()
    m.close()
    for t in threads:
        t.join()
    assert set(outcomes) <= {True, "ESTATE"}
    assert outcomes.count("ESTATE") == 4


CORPUS = os.path.join(os.path.dirname(MODELS), "fuzz", "corpus", "onnx")


@pytest.mark.parametrize("name", ["multi_two_inputs", "inputs_int64_bool"])
def test_several_inputs_match_onnxruntime(name):
    path = os.path.join(CORPUS, f"{name}.onnx")
    if not os.path.exists(path):
        pytest.skip(f"{path} is absent")
    loadable("toy_mlp")
    rng = np.random.default_rng(3)
    with pe.Model(path) as m:
        feeds = {}
        for t in m.inputs:
            shape = [5] + [d for d in t["shape"] if d is not None]
            if t["dtype"] == np.float32:
                feeds[t["name"]] = rng.normal(size=shape).astype(np.float32)
            elif t["dtype"] == np.int64:
                feeds[t["name"]] = rng.integers(-3, 4, size=shape).astype(np.int64)
            else:
                feeds[t["name"]] = rng.random(shape) < 0.5
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        ref = sess.run(None, feeds)[0]
        np.testing.assert_allclose(m.run(feeds), ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(m.run(*[feeds[t["name"]] for t in m.inputs]),
                                      m.run(feeds))
        first = m.inputs[0]["name"]
        with pytest.raises(TypeError):
            m.run(feeds[first])
        with pytest.raises(ValueError):
            m.run({first: feeds[first]})
        with pytest.raises(ValueError):
            m.run({k: (v[:2] if k == first else v) for k, v in feeds.items()})
        last = m.inputs[-1]
        with pytest.raises(TypeError):
            m.run({k: (v.astype(np.float64) if k == last["name"] else v)
                   for k, v in feeds.items()})


def _save(tmp_path, nodes, inputs, outputs, name):
    from onnx import helper
    g = helper.make_graph([helper.make_node(*n[:3], **n[3]) for n in nodes], "g",
                          [helper.make_tensor_value_info(*i) for i in inputs],
                          [helper.make_tensor_value_info(*o) for o in outputs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = str(tmp_path / name)
    onnx.save(m, path)
    return path


def test_constant_outputs_keep_their_type(tmp_path):
    from onnx import TensorProto as T
    path = _save(tmp_path, [("Shape", ["x"], ["y"], {})], [("x", T.FLOAT, [3, 4, 5])],
                 [("y", T.INT64, [3])], "shape.onnx")
    x = np.zeros((3, 4, 5), np.float32)
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with pe.Model(path) as m:
        assert m.outputs[0]["dtype"] == np.int64
        y = m.run(x)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y[0], ref)


def test_a_model_without_input_runs_once(tmp_path):
    from onnx import TensorProto as T
    from onnx import numpy_helper
    v = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    path = _save(tmp_path, [("Constant", [], ["c"], {"value": numpy_helper.from_array(v, "v")}),
                            ("Relu", ["c"], ["y"], {})], [], [("y", T.FLOAT, [2, 3])],
                 "const.onnx")
    with pe.Model(path) as m:
        assert m.inputs == [] and "no input" in repr(m)
        np.testing.assert_array_equal(m.run()[0], np.maximum(v, 0))
