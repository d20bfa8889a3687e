"""How much would copying a true-colour hint into its neighbourhood lower the L1 error of the bundled model's
no-hint prediction, per channel? (the incentive training with true-colour hints gives to each hint channel)"""
import glob, random, torch, torch.nn.functional as F
from polychrome.hub import load_model
from polychrome.io import load_rgb
from polychrome.color.lab import rgb_to_lab, l_to_net, net_to_ab
torch.set_num_threads(2); random.seed(0)
m = load_model("hints")
files = random.sample(sorted(glob.glob("../shared/data/train/**/*.*", recursive=True)), 96)
rgb = torch.cat([F.interpolate(torch.from_numpy(load_rgb(f)).permute(2, 0, 1)[None].float(), size=(192, 192), mode="bilinear", antialias=True) for f in files]).clamp(0, 1)
lab = rgb_to_lab(rgb); L, ab = lab[:, :1], lab[:, 1:]
with torch.no_grad(): base = net_to_ab(m(l_to_net(L)))
hint = F.avg_pool2d(ab, 2, stride=1)  # colour of a 2x2 hint at each top-left corner
for r in (2, 8, 16, 32):
    k = 2 * r + 1
    # mean |truth - c| over the (2r+1)^2 window around the hint, with c = hint colour vs c = model's no-hint output
    pad = lambda t: F.pad(t, (r, r, r, r), mode="replicate")
    d_hint, d_base = [], []
    g = torch.Generator().manual_seed(0)
    ys = torch.randint(r, 191 - r, (200,), generator=g); xs = torch.randint(r, 191 - r, (200,), generator=g)
    for y, x in zip(ys.tolist(), xs.tolist()):
        win = ab[:, :, y - r:y + r + 1, x - r:x + r + 1]; bw = base[:, :, y - r:y + r + 1, x - r:x + r + 1]
        h = hint[:, :, y, x][..., None, None]
        d_hint.append((win - h).abs().mean((2, 3))); d_base.append((win - bw).abs().mean((2, 3)))
    dh, db = torch.stack(d_hint).mean((0, 1)), torch.stack(d_base).mean((0, 1))
    print(f"window {k:2d}px: L1 with no-hint model a {db[0]:.2f} b {db[1]:.2f} | copying the hint a {dh[0]:.2f} b {dh[1]:.2f} | gain a {db[0]-dh[0]:+.2f} b {db[1]-dh[1]:+.2f}")
