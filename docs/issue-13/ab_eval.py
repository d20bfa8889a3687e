"""Score the small A/B models (ab_small.py): PSNR with 0 and 10 true hints, and one off-truth hint per photo."""
import glob, sys, torch, torch.nn.functional as F
from polychrome.hub import load_model
from polychrome.io import load_rgb
from polychrome.color.lab import rgb_to_lab, lab_to_rgb, l_to_net, ab_to_net, net_to_ab
from polychrome.color.hints import sample_hints, off_truth_probe, hint_fidelity, summarize_fidelity
from polychrome.eval.metrics import psnr_per_image
torch.set_num_threads(1)
files = sorted(glob.glob("../shared/data/val/bsds500/*.jpg"))
rgb = torch.cat([F.interpolate(torch.from_numpy(load_rgb(f)).permute(2, 0, 1)[None].float(), size=(64, 64), mode="bilinear", antialias=True) for f in files]).clamp(0, 1)
lab = rgb_to_lab(rgb); L, ab = lab[:, :1], lab[:, 1:]
for f in sys.argv[1:]:
    m = load_model(f"/tmp/ab{f}/last.pt").eval()
    with torch.no_grad():
        base = net_to_ab(m(l_to_net(L)))
        p0 = psnr_per_image(lab_to_rgb(torch.cat([L, base], 1)), rgb).mean().item()
        hab, hm = sample_hints(ab, 10, 2, torch.Generator().manual_seed(10))
        o = net_to_ab(m(l_to_net(L), ab_to_net(hab), hm))
        p10 = psnr_per_image(lab_to_rgb(torch.cat([L, o], 1)), rgb).mean().item()
        hab, hm, reg = off_truth_probe(L, ab, torch.Generator().manual_seed(0), radius=12)
        o = net_to_ab(m(l_to_net(L), ab_to_net(hab), hm))
        s = summarize_fidelity(hint_fidelity(L, o, base, hab, hm, reg))
    print(f"fraction {f}: 300 bsds500 photos at 64 px: PSNR 0 hints {p0:.2f}, 10 true hints {p10:.2f} (+{p10-p0:.2f}); off-truth hint: CIEDE2000 median {s['de00_median']:.1f}, chroma {s['chroma_median']:.0%}, leak {s['leak']:.2f}")
