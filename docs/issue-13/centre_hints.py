"""One hint at the centre of a few BSDS500 photos: requested vs obtained (a, b) at the hint and far away."""
import sys, torch
from polychrome import Colorizer
from polychrome.io import load_rgb
from polychrome.pipeline import lightness
from polychrome.color.hints import Hint
torch.set_num_threads(1)
spec = sys.argv[1] if len(sys.argv) > 1 else "hints"
photos = ["100007.jpg", "101027.jpg", "10081.jpg", "100039.jpg"]
colors = {"red": "#c0392b", "green": "#2e9e3a", "blue": "#2f5fbf", "yellow": "#e0c020"}
for prec in ("fp32", "bf16"):
    model = Colorizer.from_pretrained(spec, precision=prec)
    size = model.card.working_size
    print(f"== {spec} {prec} (size {size}); columns: requested | at hint (3x3 px mean) | far corner (top-left 10x10) | no-hint at hint, far")
    for ph in photos:
        L = lightness(load_rgb(f"../shared/data/val/bsds500/{ph}"))
        H, W = L.shape[-2:]
        cy, cx = H // 2, W // 2
        base = model.predict_ab(L, size)
        b_hint = base[0, :, cy-1:cy+2, cx-1:cx+2].mean((1, 2)); b_far = base[0, :, :10, :10].mean((1, 2))
        for name, hexc in colors.items():
            h = Hint(cx, cy, hexc)
            ab = model.predict_ab(L, size, hints=[h])
            at = ab[0, :, cy-1:cy+2, cx-1:cx+2].mean((1, 2)); far = ab[0, :, :10, :10].mean((1, 2))
            print(f"{ph:11s} {name:6s} req ({h.ab[0]:6.1f},{h.ab[1]:6.1f}) | hint ({at[0]:6.1f},{at[1]:6.1f}) | far ({far[0]:5.1f},{far[1]:5.1f}) | base ({b_hint[0]:5.1f},{b_hint[1]:5.1f}) ({b_far[0]:5.1f},{b_far[1]:5.1f})")
