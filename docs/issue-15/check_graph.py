"""The bundled default (PyTorch, fp32) against its ONNX graph: largest |difference| of ab_net and of the
confidence logits, at 256x256 and at sizes that are multiples of no stride.

    polychrome export default --format onnx -o deploy/onnx
    PYTHONPATH=src python docs/issue-15/check_graph.py deploy/onnx

A random smooth L per size (seed 0), network units; one thread. Sides under 32 px are padded before the graph
(polychrome.deploy.onnx.MIN_SIDE), so the last two sizes are close to PyTorch, not identical.
"""
import sys

import torch
import torch.nn.functional as F

from polychrome import hub
from polychrome.deploy import onnx as deploy

if len(sys.argv) != 2:
    sys.exit(__doc__)
torch.set_num_threads(1)
model, card = hub.load("default")
model = model.float().eval()
graph = deploy.OnnxModel(f"{sys.argv[1]}/{deploy.ONNX_FILE}", card, threads=1)
for hw in [(256, 256), (97, 131), (136, 200), (75, 33), (321, 481), (255, 257), (40, 24), (12, 20)]:
    gen = torch.Generator().manual_seed(0)
    x = F.interpolate(torch.rand(1, 1, max(2, hw[0] // 8), max(2, hw[1] // 8), generator=gen) * 2 - 1, size=hw,
                      mode="bilinear", align_corners=False)
    with torch.no_grad():
        ref = model(x, return_all=True, **card.decoding())
    got = graph(x, return_all=True, **card.decoding())
    d_ab = float((ref.ab_net.float() - got.ab_net).abs().max())
    d_conf = float((ref.confidence.float() - got.confidence).abs().max())
    print(f"{hw[0]}x{hw[1]}: max |Δ ab_net| {d_ab:.1e}, max |Δ confidence logit| {d_conf:.1e}")
