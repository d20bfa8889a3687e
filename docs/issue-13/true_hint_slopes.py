"""Slope of obtained on requested ab at the hint squares, per channel, for 1/10/50 true-colour hints; then constant
off-truth hints (+-40 on a or b) at 1 and 10 places: the colour at the hints and elsewhere."""
import sys, torch, glob
from polychrome.hub import load_model
from polychrome.io import load_rgb
from polychrome.color.lab import rgb_to_lab, l_to_net, ab_to_net, net_to_ab
from polychrome.color.hints import sample_hints
import torch.nn.functional as F
torch.set_num_threads(2)
m = load_model(sys.argv[1] if len(sys.argv) > 1 else "hints")
files = sorted(glob.glob("../shared/data/val/bsds500/*.jpg"))[:24]
imgs = []
for f in files:
    x = torch.from_numpy(load_rgb(f)).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=(128, 192) if x.shape[-1] > x.shape[-2] else (192, 128), mode="bilinear", antialias=True)
    if x.shape[-1] < x.shape[-2]: x = x.transpose(-1, -2)
    imgs.append(x)
rgb = torch.cat(imgs).clamp(0, 1)
lab = rgb_to_lab(rgb); L, ab = lab[:, :1], lab[:, 1:]
g = torch.Generator().manual_seed(0)
for n in (1, 10, 50):
    hab, hm = sample_hints(ab, n, 2, torch.Generator().manual_seed(n))
    with torch.no_grad():
        out = net_to_ab(m(l_to_net(L), ab_to_net(hab), hm))
        base = net_to_ab(m(l_to_net(L)))
    sel = hm[:, 0] > 0
    for name, hint_ab in (("true", hab), ):
        for c, cn in ((0, "a"), (1, "b")):
            req = hint_ab[:, c][sel]; got = out[:, c][sel]; b0 = base[:, c][sel]
            slope = ((req - req.mean()) * (got - got.mean())).sum() / ((req - req.mean()) ** 2).sum()
            err = (got - req).abs().mean(); err0 = (b0 - req).abs().mean()
            print(f"{n:3d} true hints {cn}: slope got~req {slope:.2f}, |got-req| {err:.1f} (no hints {err0:.1f}), std req {req.std():.1f}")
# off-truth: a constant colour hint of (+-40, 0), (0, +-40) at 1 and at 10 random places
for n in (1, 10):
    _, hm = sample_hints(ab, n, 2, torch.Generator().manual_seed(100 + n))
    for col in ((40., 0.), (-40., 0.), (0., 40.), (0., -40.)):
        hab = torch.tensor(col).view(1, 2, 1, 1) * hm
        with torch.no_grad():
            out = net_to_ab(m(l_to_net(L), ab_to_net(hab), hm))
        sel = hm[:, 0] > 0
        at = out.permute(1, 0, 2, 3)[:, sel].mean(1)
        far = out.permute(1, 0, 2, 3)[:, ~sel].mean(1)
        print(f"{n:3d} hints of {col}: at hints ({at[0]:.1f},{at[1]:.1f}) elsewhere ({far[0]:.1f},{far[1]:.1f})")
