"""int8 activation ranges for the bundled default: quantise its fp32 graph with several calibration settings.

    polychrome export default --format onnx -o deploy/onnx
    PYTHONPATH=src python docs/issue-15/calibration_sweep.py deploy/onnx ../shared/data/train/bsds_train deploy/sweep
    PYTHONPATH=src python docs/issue-15/delta_ab.py ../shared/data/val/bsds500 20 deploy/onnx deploy/sweep/*

Writes OUT/minmax, OUT/p99.99, OUT/p99.9, OUT/p99.5: the quantisation of ``polychrome export --int8`` (QDQ,
per-channel int8 weights, uint8 activations, the decode after the last convolution in fp32, the first 32
calibration photos) with min-max or percentile activation ranges; each folder an ONNX export the Colorizer loads.
"""
import contextlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

from onnxruntime import quantization as q
from onnxruntime.quantization.shape_inference import quant_pre_process

from polychrome import hub
from polychrome.deploy import onnx as deploy

if len(sys.argv) != 4:
    sys.exit(__doc__)
fp32_dir, calib, out_root = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
card = hub.load(fp32_dir)[1]
photos = deploy.calibration_files(calib, deploy.CALIBRATION_PHOTOS)
settings = {"minmax": (q.CalibrationMethod.MinMax, {}), **{
    f"p{p}": (q.CalibrationMethod.Percentile, {"CalibPercentile": p}) for p in (99.99, 99.9, 99.5)}}
with tempfile.TemporaryDirectory() as tmp:
    pre = Path(tmp) / "pre.onnx"
    quant_pre_process(str(fp32_dir / deploy.ONNX_FILE), str(pre), skip_symbolic_shape=True)
    for name, (method, extra) in settings.items():
        out = out_root / name
        out.mkdir(parents=True, exist_ok=True)
        with contextlib.redirect_stdout(io.StringIO()):
            q.quantize_static(str(pre), str(out / deploy.ONNX_FILE), deploy.CalibrationReader(photos, card),
                              quant_format=q.QuantFormat.QDQ, per_channel=True, activation_type=q.QuantType.QUInt8,
                              weight_type=q.QuantType.QInt8, calibrate_method=method,
                              nodes_to_exclude=deploy.tail_nodes(pre), extra_options=extra)
        meta = json.loads((fp32_dir / "config.json").read_text())
        meta["onnx"].update(precision="int8", calibration_setting=name)
        (out / "config.json").write_text(json.dumps(meta, indent=2))
        print(name, "written", flush=True)
