"""Where a model's parameters are: counts per layer and per module, the largest layers' share, weight histograms.

``polychrome report --model M --out DIR`` writes ``params.json``, ``params.md`` and
``weight_histograms.png`` into DIR; ``polychrome benchmark`` writes the same for each model it runs.

A *layer* is a module that holds parameters itself (a Conv2d, a BatchNorm2d, a Linear...); a *module*
is any node of the module tree, counted with everything under it. A parameter shared by two layers is
counted once, at the first layer that holds it (the order of ``named_modules``), so the layers' counts
add up to the model's ``sum(p.numel() for p in model.parameters())``. Buffers (BatchNorm running
statistics) are not parameters; their total is reported beside.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

#: Layers listed as "the largest" in the Markdown report, and drawn as histograms.
TOP_LAYERS = 10
HISTOGRAM_LAYERS = 8
HISTOGRAM_BINS = 100
#: Depth of the module tree shown in the Markdown report (the JSON has every module).
MODULE_DEPTH = 2


def parameter_report(model: nn.Module) -> dict:
    """Counts per layer and per module, the largest layers with their share, and weight statistics.

    Returns:
        ``{"total", "trainable", "buffers", "layers": [...], "modules": [...], "largest": [...]}``.
        ``layers``: in model order, ``{"name", "type", "parameters", "share", "shapes", "mean", "std",
        "abs_max"}`` (share of the total in [0, 1]; statistics over all of the layer's own parameters).
        ``modules``: ``{"name", "type", "depth", "parameters", "share"}`` for every module that holds
        parameters (depth 0 is the model itself). ``largest``: the :data:`TOP_LAYERS` biggest layers,
        biggest first, each with ``cumulative_share``.
    """
    seen: set[int] = set()
    layers = []
    owner: dict[int, str] = {}  # id(parameter) -> the layer it is counted at
    for name, module in model.named_modules():
        own = [(pn, p) for pn, p in module.named_parameters(recurse=False) if id(p) not in seen]
        if not own:
            continue
        for _, p in own:
            seen.add(id(p))
            owner[id(p)] = name
        values = torch.cat([p.detach().float().reshape(-1) for _, p in own])
        layers.append(
            {
                "name": name or "(model)",
                "type": type(module).__name__,
                "parameters": int(values.numel()),
                "shapes": {pn: list(p.shape) for pn, p in own},
                "mean": float(values.mean()),
                "std": float(values.std(unbiased=False)),
                "abs_max": float(values.abs().max()),
            }
        )
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    for layer in layers:
        layer["share"] = layer["parameters"] / total if total else 0.0

    modules = []
    for name, module in model.named_modules():
        # Each parameter under this module, counted once (model.parameters() semantics).
        n = sum(p.numel() for p in module.parameters())
        if n:
            depth = 0 if not name else name.count(".") + 1
            modules.append(
                {"name": name or "(model)", "type": type(module).__name__, "depth": depth, "parameters": int(n),
                 "share": n / total if total else 0.0}
            )

    largest = sorted(layers, key=lambda layer: -layer["parameters"])[:TOP_LAYERS]
    cumulative = 0.0
    top = []
    for layer in largest:
        cumulative += layer["share"]
        top.append({"name": layer["name"], "type": layer["type"], "parameters": layer["parameters"],
                    "share": layer["share"], "cumulative_share": cumulative})
    return {
        "total": int(total),
        "trainable": int(trainable),
        "buffers": int(sum(b.numel() for b in model.buffers())),
        "layers": layers,
        "modules": modules,
        "largest": top,
    }


def weight_histograms(model: nn.Module, path: str | os.PathLike, title: str = "") -> Path:
    """A PNG of weight histograms: all parameters together, then the :data:`HISTOGRAM_LAYERS` largest layers.

    The first panel's counts are on a log scale. Drawn with matplotlib's Agg canvas (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    report = parameter_report(model)
    by_name = dict(model.named_modules())
    params = [p.detach().float().reshape(-1) for p in model.parameters()]
    panels: list[tuple[str, np.ndarray, np.ndarray]] = []
    if params:
        # One shared range, histogram summed tensor by tensor: no copy of a 100M-parameter model.
        lo = min(float(p.min()) for p in params)
        hi = max(float(p.max()) for p in params)
        lo, hi = (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)
        edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
        counts = sum(np.histogram(p.numpy(), bins=edges)[0] for p in params)
        panels.append((f"all parameters ({report['total']:,})", counts, edges))
    for layer in sorted(report["layers"], key=lambda x: -x["parameters"])[:HISTOGRAM_LAYERS]:
        module = by_name["" if layer["name"] == "(model)" else layer["name"]]
        values = torch.cat([p.detach().float().reshape(-1) for p in module.parameters(recurse=False)]).numpy()
        counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
        label = f"{layer['name']} ({layer['type']}, {layer['parameters']:,}, {layer['share']:.1%})"
        panels.append((label, counts, edges))

    cols = 3
    rows = max(1, -(-len(panels) // cols))
    fig = Figure(figsize=(5 * cols, 3 * rows), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    for i, (label, counts, edges) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.stairs(counts, edges, fill=True)
        if i == 0:
            ax.set_yscale("log")  # BatchNorm weights near 1 and biases: a long tail beside the weights near 0
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def markdown(report: dict, title: str, histogram: str | None = None) -> str:
    """The report as Markdown: totals, the largest layers, the module tree to :data:`MODULE_DEPTH`, every layer."""
    lines = [
        f"# Parameters of {title}",
        "",
        f"**{report['total']:,}** parameters ({report['trainable']:,} trainable), "
        f"plus {report['buffers']:,} buffer values (not parameters).",
        "",
        f"## The {len(report['largest'])} largest layers",
        "",
        "| layer | type | parameters | share | cumulative |",
        "|---|---|---:|---:|---:|",
    ]
    for x in report["largest"]:
        lines.append(
            f"| `{x['name']}` | {x['type']} | {x['parameters']:,} | {x['share']:.1%} | {x['cumulative_share']:.1%} |"
        )
    lines += ["", f"## Modules (to depth {MODULE_DEPTH})", ""]
    lines += ["| module | type | parameters | share |", "|---|---|---:|---:|"]
    for m in report["modules"]:
        if m["depth"] <= MODULE_DEPTH:
            indent = "&nbsp;&nbsp;" * m["depth"]
            lines.append(f"| {indent}`{m['name']}` | {m['type']} | {m['parameters']:,} | {m['share']:.1%} |")
    lines += ["", "## Every layer", "", "| layer | type | shapes | parameters | share | std | max abs |",
              "|---|---|---|---:|---:|---:|---:|"]
    for x in report["layers"]:
        shapes = ", ".join(f"{k} {'x'.join(map(str, v)) or 'scalar'}" for k, v in x["shapes"].items())
        lines.append(
            f"| `{x['name']}` | {x['type']} | {shapes} | {x['parameters']:,} | {x['share']:.2%} | "
            f"{x['std']:.3g} | {x['abs_max']:.3g} |"
        )
    if histogram:
        lines += ["", "## Weight histograms", "", f"![weight histograms]({histogram})"]
    return "\n".join(lines) + "\n"


def write_parameter_report(model: nn.Module, out_dir: str | os.PathLike, title: str) -> dict:
    """Write ``params.json``, ``params.md`` and ``weight_histograms.png`` into ``out_dir``; return the report
    (with ``files``: the three paths)."""
    from polychrome.io import write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = parameter_report(model)
    report["model"] = title
    hist = weight_histograms(model, out / "weight_histograms.png", title=title)
    (out / "params.md").write_text(markdown(report, title, histogram=hist.name), encoding="utf-8")
    write_json_atomic(report, out / "params.json")
    report["files"] = [str(out / "params.json"), str(out / "params.md"), str(hist)]
    return report
