"""Sum up score_variants.py's JSON: per set PSNR / CIEDE2000 / colourfulness (% of the originals'), people's
fashion (F) and sport (S) halves, and the grey baseline of the same run.

usage: python docs/issue-12/summarize_variants.py OUT.json
"""
import json, sys
from statistics import mean
d = json.load(open(sys.argv[1]))
def row(rs): return mean(r['psnr'] for r in rs), mean(r['ciede2000'] for r in rs), mean(r['colorfulness'] for r in rs)/mean(r['ref_colorfulness'] for r in rs)*100
first = next(iter(d.values()))
g = lambda rs: (mean(r['grey_psnr'] for r in rs), mean(r['grey_ciede2000'] for r in rs))
print(f"{'grey':38s}", *(f"{n}: {g(rs)[0]:.2f}/{g(rs)[1]:.2f}      " for n, rs in first.items()))
for label, sets in d.items():
    out = []
    for n, rs in sets.items():
        p, c, col = row(rs); out.append(f"{n}: {p:.2f}/{c:.2f}/{col:.0f}%")
        if n == 'people':
            f = [r for r in rs if r['file'].startswith('fashion')]; s = [r for r in rs if not r['file'].startswith('fashion')]
            out.append(f"F {row(f)[0]:.2f}/{row(f)[1]:.2f} S {row(s)[0]:.2f}/{row(s)[1]:.2f}")
    print(f"{label:38s}", *out)
