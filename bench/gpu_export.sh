# shellcheck shell=sh
# The two models the GPU scripts export with torch, afresh each run, for
# `. bench/gpu_export.sh` from the repository root (PYTHON, default
# python3, with torch and onnxscript):
#   dl   DeepLOB over 32 book columns (the engine's most channels per
#        window; the zoo's at 40 goes through the parity test only, since
#        the engine's handle refuses it), /tmp/deeplob32.onnx;
#   t64  the Transformer at 64 ticks, d_model 64 (models/zoo.py
#        transformer64), as the default exporter writes it, in a folder
#        named zoo (gpu_torch.py builds its module from the name).
# Each is left empty where its export failed, after the log's last lines.
pe_gpu_py=${PYTHON:-python3}
dl=/tmp/deeplob32.onnx
rm -f $dl
$pe_gpu_py bench/gpu_torch.py --export-deeplob32 $dl >/tmp/export.log 2>&1 ||
  { echo "deeplob32: export failed"; tail -5 /tmp/export.log; }
[ -f $dl ] || dl=
t64=/tmp/gpu_zoo/zoo/transformer64.default.onnx
rm -rf /tmp/gpu_zoo
mkdir -p /tmp/gpu_zoo/zoo
$pe_gpu_py -c "import sys; sys.path.insert(0, 'bench')
from bench_model_peers import zoo_models
zoo_models('/tmp/gpu_zoo/zoo', ['transformer64'], ['default'])" \
  >/tmp/export64.log 2>&1 || { echo "transformer64: export failed"; tail -5 /tmp/export64.log; }
[ -f $t64 ] || t64=
