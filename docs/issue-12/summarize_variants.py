"""Sum up score_variants.py's JSON: per set PSNR / CIEDE2000 / colourfulness (% of the originals'), people's
fashion (F) and sport (S) halves, and the grey baseline of the same run.

usage: python docs/issue-12/summarize_variants.py OUT.json
"""
import json
import sys
from statistics import mean


def scores(rows):
    """Mean PSNR, mean CIEDE2000, and colourfulness as a % of the originals'."""
    colour = mean(r["colorfulness"] for r in rows) / mean(r["ref_colorfulness"] for r in rows) * 100
    return mean(r["psnr"] for r in rows), mean(r["ciede2000"] for r in rows), colour


def main() -> None:
    runs = json.loads(open(sys.argv[1]).read())
    first = next(iter(runs.values()))
    grey = [f"{n}: {mean(r['grey_psnr'] for r in rs):.2f}/{mean(r['grey_ciede2000'] for r in rs):.2f}" for n, rs in first.items()]
    print(f"{'grey':38s}", *grey)
    for label, sets in runs.items():
        out = []
        for name, rows in sets.items():
            out.append("{}: {:.2f}/{:.2f}/{:.0f}%".format(name, *scores(rows)))
            if name == "people":
                halves = ([r for r in rows if r["file"].startswith("fashion")], [r for r in rows if not r["file"].startswith("fashion")])
                out.append("F {:.2f}/{:.2f} S {:.2f}/{:.2f}".format(*scores(halves[0])[:2], *scores(halves[1])[:2]))
        print(f"{label:38s}", *out)


if __name__ == "__main__":
    main()
