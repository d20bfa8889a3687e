"""Small from-scratch A/B (1 thread, 2-3 minutes for 1,500 steps): icolorit dim 96 depth 4 at 64 px, configs/hints.toml
otherwise, with hint_recolor_fraction = FRACTION. Usage, from the repository root:
    PYTHONPATH=src python docs/issue-13/ab_small.py FRACTION /tmp/abFRACTION 1500
then docs/issue-13/ab_eval.py FRACTION ... scores /tmp/abFRACTION/last.pt on all of BSDS500 at 64 px."""
import sys, glob, torch, torch.nn.functional as F
from polychrome.train.config import make_config
from polychrome.train.loop import Trainer
from polychrome.io import load_rgb
from polychrome.color.lab import rgb_to_lab, l_to_net, ab_to_net, net_to_ab
from polychrome.color.hints import sample_hints, off_truth_probe, hint_fidelity, summarize_fidelity
frac, out, steps = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
cfg = make_config("configs/hints.toml", {
    "hint_recolor_fraction": frac, "max_steps": steps, "out_dir": out, "num_threads": 1, "val_max_images": 16,
    "image_size": 64, "infer_size": 64, "batch_size": 32, "lr": 1e-3, "warmup_steps": 50, "ema_decay": 0.0,
    "model_kwargs": {"dim": 96, "depth": 4, "heads": 3, "img_size": 64}, "hint_max": 60, "hint_region_radius": 12,
    "log_every_steps": 50, "ckpt_every_steps": 0, "seed": 0})
t = Trainer(cfg, progress=False)
s = t.fit()
print("fit", {k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()})
m = t.model.eval()
files = sorted(glob.glob("../shared/data/val/bsds500/*.jpg"))[:96]
rgb = torch.cat([F.interpolate(torch.from_numpy(load_rgb(f)).permute(2, 0, 1)[None].float(), size=(64, 64), mode="bilinear", antialias=True) for f in files]).clamp(0, 1)
lab = rgb_to_lab(rgb); L, ab = lab[:, :1], lab[:, 1:]
with torch.no_grad():
    base = net_to_ab(m(l_to_net(L)))
    for n in (1, 10):
        hab, hm = sample_hints(ab, n, 2, torch.Generator().manual_seed(n))
        o = net_to_ab(m(l_to_net(L), ab_to_net(hab), hm)); sel = hm[:, 0] > 0
        sl = []
        for c in (0, 1):
            r, g = hab[:, c][sel], o[:, c][sel]; r, g = r - r.mean(), g - g.mean(); sl.append(float((r * g).sum() / (r * r).sum()))
        print(f"{n} true hints: slope a {sl[0]:.2f} b {sl[1]:.2f}")
    hab, hm, reg = off_truth_probe(L, ab, torch.Generator().manual_seed(0), radius=12)
    o = net_to_ab(m(l_to_net(L), ab_to_net(hab), hm))
    print("off-truth probe", {k: round(v, 3) for k, v in summarize_fidelity(hint_fidelity(L, o, base, hab, hm, reg)).items()})
