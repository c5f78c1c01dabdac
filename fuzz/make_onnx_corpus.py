#!/usr/bin/env python3
"""Writes seeds of the ONNX fuzzer's corpus (fuzz/corpus/onnx/): models with
external data (ext_*.onnx), in the input format fuzz_onnx.c reads: "PEXD",
the data blob's length (4 bytes, little-endian), the blob, then the model,
whose external tensors all read that blob; and a model with float32, int64
and bool inputs.

    .venv/bin/python fuzz/make_onnx_corpus.py"""
import os
import struct
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus", "onnx")


def seed(model_bytes, blob):
    return b"PEXD" + struct.pack("<I", len(blob)) + blob + model_bytes


def externalised(path):
    """The model at path with every initializer in one data file."""
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "m.onnx")
        onnx.save_model(onnx.load(path), f, save_as_external_data=True,
                        all_tensors_to_one_file=True, location="m.data", size_threshold=0)
        with open(f, "rb") as fh:
            model = fh.read()
        with open(os.path.join(d, "m.data"), "rb") as fh:
            return model, fh.read()


def gemm_ext(**entries):
    w = numpy_helper.from_array(np.ones((4, 8), dtype=np.float32), "wx")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in entries.items():
        e = w.external_data.add()
        e.key, e.value = k, str(v)
    g = helper.make_graph(
        [helper.make_node("Gemm", ["input", "wx"], ["output"], transB=1)], "ext",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 4])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
    m.ir_version = 9
    return m.SerializeToString()


def int_inputs():
    """y = x + Cast(mask) + Cast(ids): float32, bool and int64 inputs."""
    g = helper.make_graph(
        [helper.make_node("Cast", ["mask"], ["mf"], to=TensorProto.FLOAT),
         helper.make_node("Cast", ["ids"], ["idf"], to=TensorProto.FLOAT),
         helper.make_node("Add", ["x", "mf"], ["s"]),
         helper.make_node("Add", ["s", "idf"], ["y"])], "ints",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("mask", TensorProto.BOOL, ["N", 4]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
    m.ir_version = 9
    return m.SerializeToString()


def main():
    seeds = {}
    for name, path in (("ext_toy_mlp.onnx", "models/toy_mlp.onnx"),
                       ("ext_cnn_toy.onnx", "tests/models/cnn_toy.onnx"),
                       ("ext_lstm.onnx", "tests/models/lstm.onnx")):
        model, blob = externalised(os.path.join(ROOT, path))
        seeds[name] = seed(model, blob)
    blob = np.arange(32, dtype=np.float32).tobytes()
    seeds["ext_gemm_offset.onnx"] = seed(gemm_ext(location="w.bin", offset=64, length=128),
                                         blob + blob)
    seeds["ext_gemm_past_end.onnx"] = seed(gemm_ext(location="w.bin", offset=64, length=128),
                                           blob)
    seeds["ext_gemm_dotdot.onnx"] = seed(gemm_ext(location="../w.bin"), blob)
    seeds["ext_gemm_no_blob.onnx"] = gemm_ext(location="w.bin")
    seeds["inputs_int64_bool.onnx"] = int_inputs()
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as fh:
            fh.write(data)
        print(os.path.join("fuzz", "corpus", "onnx", name), len(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
