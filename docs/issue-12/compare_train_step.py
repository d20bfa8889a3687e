"""Training-step time of effnet-cic on the Lite0 and the Lite2 encoder, interleaved in one run (these machines are
noisy: compare the ratio). Random weights and input, batch 32 at 128 px, border 0, bf16 autocast, channels_last,
2 threads; forward, a stand-in loss on the bin logits and the ab, backward and an AdamW step; median of
N steps (default 6) after 2 warm-up steps. Data loading is left out.

    PYTHONPATH=src python docs/issue-12/compare_train_step.py [N]
"""
import statistics
import sys
import time

import torch

from polychrome.models import create_model

torch.set_num_threads(2)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 6
ms = {v: create_model("effnet-cic", variant=v, border=0).train().to(memory_format=torch.channels_last)
      for v in ("lite0", "lite2")}
opts = {v: torch.optim.AdamW(m.parameters(), 1e-4) for v, m in ms.items()}
x = torch.randn(32, 1, 128, 128).contiguous(memory_format=torch.channels_last)
times = {v: [] for v in ms}
for i in range(N + 2):
    for v, m in ms.items():
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(x, return_all=True)
            loss = out.ab_class.float().logsumexp(1).mean() + out.ab_net.float().square().mean()
        loss.backward()
        opts[v].step()
        opts[v].zero_grad(set_to_none=True)
        if i >= 2:
            times[v].append(time.perf_counter() - t)
for v, ts in times.items():
    print(v, f"{statistics.median(ts)*1e3:.0f} ms/step, {32/statistics.median(ts):.1f} images/s")
print("lite2 / lite0:", f"{statistics.median(times['lite2'])/statistics.median(times['lite0']):.2f}")
