"""python -m pattern_engine.runner: the CLI's replay output, byte for
byte."""

import os
import subprocess
import sys

import pytest

from conftest import MODELS, SAMPLE


def run(*args):
    return subprocess.run([sys.executable, "-m", "pattern_engine.runner", *args],
                          capture_output=True)


@pytest.mark.parametrize("model", [None, "toy_cnn.onnx", "pattern_cnn.onnx"])
def test_same_stdout_as_cli_replay(cli, model):
    ours = run("--ticks", SAMPLE, *(["--model-engine", os.path.join(MODELS, model)]
                                    if model else []))
    flags = ["--model", os.path.join(MODELS, model)] if model else ["--backend", "stub"]
    theirs = subprocess.run([cli, "replay", "--ticks", SAMPLE, *flags],
                            capture_output=True)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert ours.stdout.count(b"\n") > 5
    assert ours.stderr == b""


def test_jsonl_same_as_cli(cli):
    ours = run("--ticks", SAMPLE, "--format", "jsonl")
    theirs = subprocess.run([cli, "replay", "--ticks", SAMPLE, "--backend", "stub",
                             "--format", "jsonl"], capture_output=True)
    assert ours.stdout == theirs.stdout and ours.stdout


def test_tensorrt_plan_is_refused(tmp_path):
    plan = tmp_path / "model.engine"
    plan.write_bytes(b"\0" * 64)
    r = run("--ticks", SAMPLE, "--model-engine", str(plan))
    assert r.returncode != 0 and r.stdout == b""
    assert b"TensorRT is not in this build" in r.stderr


def test_failures_end_in_a_message_and_non_zero_exit(tmp_path):
    r = run("--ticks", str(tmp_path / "missing.csv"))
    assert r.returncode == 1 and b"missing.csv" in r.stderr and r.stdout == b""
    empty = tmp_path / "empty.csv"
    empty.write_text("ts,symbol,price,volume\n1,A,-1,1\n")
    r = run("--ticks", str(empty))
    assert r.returncode == 1 and b"no valid tick" in r.stderr
    r = run("--ticks", SAMPLE, "--model-engine", str(tmp_path / "none.onnx"))
    assert r.returncode == 1 and b"none.onnx" in r.stderr
    r = run()
    assert r.returncode == 2 and b"--ticks" in r.stderr


def _same_signals(ref: bytes, got: bytes, tol: float = 1e-5):
    """The same rows field for field, scores and confidences (fields 5 and
    6) within tol, as tests/cuda_replay.sh compares cuda with cpu."""
    a, b = ref.decode().splitlines(), got.decode().splitlines()
    assert len(a) == len(b), (len(a), len(b))
    for ra, rb in zip(a, b):
        fa, fb = ra.split(","), rb.split(",")
        assert len(fa) == len(fb), (ra, rb)
        for i, (x, y) in enumerate(zip(fa, fb)):
            if i in (4, 5) and x != y:
                assert abs(float(x) - float(y)) <= tol, (ra, rb)
            else:
                assert x == y, (ra, rb)


@pytest.mark.parametrize("mode", [None, "persistent"])
def test_backend_cuda_gives_the_cpu_signals(mode):
    model = os.path.join(MODELS, "pattern_cnn.onnx")
    cpu = run("--ticks", SAMPLE, "--model-engine", model, "--backend", "cpu")
    assert cpu.returncode == 0, cpu.stderr
    got = run("--ticks", SAMPLE, "--model-engine", model, "--backend", "cuda",
              *(["--cuda-mode", mode] if mode else []))
    if got.returncode != 0:
        # where there is no device (or no cuda backend in this build) the
        # runner says so and fails; the comparison needs a GPU
        assert got.returncode == 1 and got.stdout == b""
        assert (b"no CUDA device" in got.stderr
                or b"unknown backend 'cuda'" in got.stderr), got.stderr
        pytest.skip(got.stderr.decode().strip())
    assert got.stderr == b""
    assert b"-model," in got.stdout
    _same_signals(cpu.stdout, got.stdout)


def test_backend_usage_errors():
    r = run("--ticks", SAMPLE, "--backend", "cuda")
    assert r.returncode == 2 and b"need --model-engine" in r.stderr
    r = run("--ticks", SAMPLE, "--model-engine", os.path.join(MODELS, "toy_cnn.onnx"),
            "--cuda-mode", "persistent")
    assert r.returncode == 2 and b"--cuda-mode needs --backend cuda" in r.stderr
    r = run("--ticks", SAMPLE, "--model-engine", os.path.join(MODELS, "toy_cnn.onnx"),
            "--precision", "tf32")
    assert r.returncode == 2 and b"--precision needs --backend cuda" in r.stderr
    r = run("--ticks", SAMPLE, "--model-engine", os.path.join(MODELS, "toy_cnn.onnx"),
            "--backend", "tpu")
    assert r.returncode == 2 and b"--backend" in r.stderr
