"""Issue 15 item 5: structured channel pruning of the bundled default model (effnet-cic), tried and measured.

    nice -n 19 env PYTHONPATH=src python docs/issue-15/prune_trial.py --work /tmp/prune/work \
        --ratios 0.25 0.5 --finetune-steps 120 --repeats 15 --photos 100

Needs torch-pruning (``pip install torch-pruning==1.6.1``, not a polychrome dependency). Steps, each printed:

1. profile: the default model at 256x256, fp32, 1 thread, under torch.profiler, each leaf module wrapped in a
   ``record_function``: its share of the model call.
2. prune: the channels of the layers that cost the most there (:data:`GROUPS`: the four decoder stages' GLU
   convolutions and residual streams, the head trunk, which also narrows the head's input, and the
   encoder's first stride-4 expansion) are removed physically with torch-pruning's dependency graph, lowest
   L2 magnitude first (``GroupMagnitudeImportance(p=2)`` summed over each coupled group), ``ratio`` of each
   group's channels. GroupNorm is kept exact: whole GroupNorm groups are removed and ``num_groups`` follows.
   Checked: the pruned model equals the unpruned one with the same channels zeroed (masking hooks).
3. fine-tune (``--finetune-steps``): the cicgan trainer's own loss terms and weights
   (``GanTrainer.generator_losses``, configs/effnet-cic.toml) on ../shared/data/train, 128 px random crops,
   batch 16, AdamW lr 1e-4 (10 warm-up steps), gradient clip 1.0, bf16 autocast as the recipe, no EMA.
4. speed: model-call ms of every model at 256x256, fp32, 1 thread, in ONE interleaved run (each repeat
   calls every model once, in a rotating order), median; parameters and MACs (torch-pruning's counter).
5. accuracy: ``polychrome evaluate``'s scoring loop (``eval.runner.score_photos``) on the first ``--photos``
   photos of val/bsds500, every model wrapped in a Colorizer with the default model's card, in one run
   beside the grey baseline.

Writes ``--work``/results.json and prints a summary.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

import torch_pruning as tp
import torch_pruning.dependency.index_mapping as tp_index_mapping
from polychrome.colorizer import Colorizer
from polychrome.data import ColorPhotoFolder
from polychrome.eval.automatic import summarise
from polychrome.eval.runner import photo_paths, score_photos
from polychrome.hub import load
from polychrome.train.gan import GanTrainer, make_gan_config
from polychrome.train.loop import lab_batch

ROOT = Path(__file__).resolve().parents[2]

#: (label, root module, pruning function, module whose OUTPUT the removed channels are, for the masking check).
#: Chosen from the profile (step 1): every decoder stage's two 3x3 GLU convolutions ("glu": the first conv's
#: output pairs; "stream": the stage's output width, i.e. the second conv, the shortcut, FiLM and the next
#: stage's or the head's input), the head trunk (the head's 1x1 conv to 265 logits reads it) and the encoder's
#: stride-4 expansion (stages.1.0: the expand 1x1, its depthwise conv and BNs at 128x128).
GROUPS = [
    *[(f"decoder.{k}.glu", f"decoder.{k}.block.body.0.conv", "conv_out", f"decoder.{k}.block.body.0")
      for k in range(4)],
    *[(f"decoder.{k}.stream", f"decoder.{k}.block.shortcut", "conv_out", f"decoder.{k}") for k in range(4)],
    ("head_trunk", "head_trunk.0", "conv_out", "head_trunk"),
    ("encoder.stages.1.0.hidden", "encoder.net.stages.1.0.expand.conv", "conv_out", "encoder.net.stages.1.0.dw"),
]


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------- 1. profile
def profile_modules(model: nn.Module, x: torch.Tensor, calls: int = 5) -> list[tuple[float, str, str]]:
    """(ms per call, leaf module name, module) of every leaf module, most expensive first."""
    from torch.profiler import ProfilerActivity, profile, record_function

    leaves = {n: m for n, m in model.named_modules() if not list(m.children())}
    hooks, open_ = [], {}

    def pre(name):
        def f(mod, inp):
            open_[name] = record_function("M::" + name)
            open_[name].__enter__()
        return f

    def post(name):
        def f(mod, inp, out):
            open_.pop(name).__exit__(None, None, None)
        return f

    for n, m in leaves.items():
        hooks += [m.register_forward_pre_hook(pre(n)), m.register_forward_hook(post(n))]
    try:
        with torch.no_grad():
            for _ in range(3):
                model(x)
            with profile(activities=[ProfilerActivity.CPU]) as p:
                for _ in range(calls):
                    model(x)
    finally:
        for h in hooks:
            h.remove()
    rows = [(e.cpu_time_total / calls / 1000, e.key[3:]) for e in p.key_averages() if e.key.startswith("M::")]
    return sorted(((t, n, str(leaves[n])) for t, n in rows), reverse=True)


# ----------------------------------------------------------------------------- 2. prune
class _RecordCatSizes(torch.overrides.TorchFunctionMode):
    """Records the channel sizes of every torch.cat along dim 1 during the dependency graph's trace, keyed by
    the result's grad_fn (what torch-pruning's graph node holds)."""

    def __init__(self):
        super().__init__()
        self.sizes = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.cat and getattr(out, "grad_fn", None) is not None:
            dim = (kwargs or {}).get("dim", args[1] if len(args) > 1 else 0)
            if dim == 1:
                self.sizes[out.grad_fn] = [t.shape[1] for t in args[0]]
        return out


def dependency_graph(model: nn.Module, x: torch.Tensor) -> tp.DependencyGraph:
    """torch-pruning's dependency graph of ``model``, with the concat and split sizes taken from the trace.

    torch-pruning 1.6.1 infers them from the graph, which goes wrong here: the attention gate's ``skip * alpha``
    (alpha one channel, broadcast) makes it count the gated skip as 1 channel, so the decoder's concats come
    out as [63, 1] instead of [48, 16] and the GLU chunks after them get the wrong offsets; and a concat whose
    input it cannot size at all raises a TypeError (sum over a None) before its own "unknown size" exit. Here
    the TypeError takes that exit, the true sizes (recorded while it traces, and split_size saved by autograd)
    replace the inferred ones, and the index mappings are rebuilt from them."""
    original = tp_index_mapping.update_concat_index_mapping

    def tolerant(graph, node):
        try:
            return original(graph, node)
        except TypeError:  # a concat input of unknown size: the mapping is left alone, as for size None
            return None

    tp_index_mapping.update_concat_index_mapping = tolerant
    rec = _RecordCatSizes()
    try:
        with rec:
            DG = tp.DependencyGraph().build_dependency(
                model, example_inputs=x, unwrapped_parameters=[(model.attention.gamma, 0)]
            )
        for node in DG.module2node.values():
            if node.type == tp.ops.OPTYPE.CONCAT and node.grad_fn in rec.sizes:
                node.module.concat_sizes = list(rec.sizes[node.grad_fn])
            elif node.type == tp.ops.OPTYPE.SPLIT and getattr(node.grad_fn, "_saved_dim", None) == 1:
                total = node.grad_fn._saved_self_sym_sizes[1]
                size = node.grad_fn._saved_split_size
                node.module.split_sizes = [min(size, total - i) for i in range(0, total, size)]
            else:
                continue
            sizes = node.module.concat_sizes if node.type == tp.ops.OPTYPE.CONCAT else node.module.split_sizes
            node.module.offsets = [0]
            for s in sizes:
                node.module.offsets.append(node.module.offsets[-1] + s)
        tp_index_mapping.update_index_mapping(DG)
    finally:
        tp_index_mapping.update_concat_index_mapping = original
    return DG


def group_norm_unit(group) -> int:
    """Channels per GroupNorm group of the GroupNorms a pruning group touches (1 when none): the unit in which
    channels are removed, so every GroupNorm loses whole groups."""
    unit = 1
    for dep, _ in group:
        m = dep.target.module
        if isinstance(m, nn.GroupNorm):
            unit = math.lcm(unit, m.num_channels // m.num_groups)
    return unit


def prune(model: nn.Module, ratio: float, x: torch.Tensor) -> tuple[nn.Module, dict[str, list[int]]]:
    """A copy of ``model`` with ``ratio`` of each of :data:`GROUPS`' channels removed (lowest L2 magnitude).
    Returns (pruned model, {group label: removed channel indices in the root layer's original numbering})."""
    model = copy.deepcopy(model).eval()
    DG = dependency_graph(model, x)
    modules = dict(model.named_modules())
    gn_unit = {m: m.num_channels // m.num_groups for m in model.modules() if isinstance(m, nn.GroupNorm)}
    importance = tp.importance.GroupMagnitudeImportance(p=2)
    removed = {}
    plans = []
    for label, root, _, _ in GROUPS:
        conv = modules[root]
        # The GLU conv's outputs are (a | g) halves coupled by the chunk: its own channels are the first half.
        n = conv.out_channels // 2 if label.endswith(".glu") else conv.out_channels
        group = DG.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(range(n)))
        unit = group_norm_unit(group)
        scores = importance(group)[:n].reshape(n // unit, unit).sum(1)  # one score per whole GroupNorm group
        k = int(round(ratio * n / unit))
        units = scores.argsort()[:k].tolist()
        idxs = sorted(u * unit + j for u in units for j in range(unit))
        removed[label] = idxs
        plans.append((conv, idxs))
    # All groups chosen on the unpruned weights, then removed (indices are per root layer, which no other
    # group's removal renumbers: the groups are disjoint).
    for conv, idxs in plans:
        group = DG.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=idxs)
        if not DG.check_pruning_group(group):
            raise RuntimeError(f"cannot prune {conv}")
        group.prune()
    for m, unit in gn_unit.items():
        if m.num_channels % unit:
            raise RuntimeError(f"a GroupNorm lost part of a group: {m}")
        m.num_groups = m.num_channels // unit
    return model, removed


def masked_reference(model: nn.Module, removed: dict[str, list[int]]) -> list:
    """Hooks that zero the removed channels in the unpruned ``model`` (what pruning should equal)."""
    modules = dict(model.named_modules())
    hooks = []
    for label, _, _, where in GROUPS:
        idxs = removed[label]

        def zero(mod, inp, out, idxs=idxs):
            out = out.clone()
            out[:, idxs] = 0
            return out

        hooks.append(modules[where].register_forward_hook(zero))
    return hooks


# ----------------------------------------------------------------------------- 3. fine-tune
def finetune(
    model: nn.Module, steps: int, batch: int = 16, size: int = 128, lr: float = 1e-4, seed: int = 0
) -> list[float]:
    cfg = make_gan_config(ROOT / "configs/effnet-cic.toml")
    weights = {"class": cfg.cic_class_weight, "ab": cfg.cic_ab_weight, "hist": cfg.cic_hist_weight,
               "conf": cfg.cic_conf_weight}
    trainer_view = SimpleNamespace(cfg=cfg, model=model)  # what generator_losses reads: cfg and model.palette
    data = ColorPhotoFolder(ROOT / "../shared/data/train", size, train=True, seed=seed, limit=steps * batch + 64,
                            scan_workers=1)
    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, generator=g, drop_last=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10))
    model.train()
    losses, step, t0 = [], 0, time.perf_counter()
    while step < steps:
        for rgb in loader:
            _, L_net, ab_true = lab_batch(rgb)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(L_net.contiguous(memory_format=torch.channels_last), return_all=True)
            terms = GanTrainer.generator_losses(trainer_view, out, ab_true)
            loss = sum(weights[k] * v for k, v in terms.items())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            losses.append(loss.item())
            step += 1
            if step % 20 == 0 or step == steps:
                mean20 = statistics.mean(losses[-20:])
                log(f"    step {step}/{steps}: loss {mean20:.4f} ({time.perf_counter() - t0:.0f} s)")
            if step == steps:
                break
    model.eval()
    return losses


# ----------------------------------------------------------------------------- 4. speed
def interleaved_ms(models: dict[str, nn.Module], x: torch.Tensor, repeats: int, warmup: int = 3) -> dict:
    names = list(models)
    times = {n: [] for n in names}
    with torch.no_grad():
        for _ in range(warmup):
            for n in names:
                models[n](x)
        for r in range(repeats):
            order = names[r % len(names):] + names[: r % len(names)]
            for n in order:
                t = time.perf_counter()
                models[n](x)
                times[n].append(1000 * (time.perf_counter() - t))
    return {n: {"median_ms": statistics.median(v), "min_ms": min(v), "max_ms": max(v)} for n, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.25, 0.5])
    ap.add_argument("--finetune-steps", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--photos", type=int, default=100)
    ap.add_argument("--data", default=str(ROOT / "../shared/data/val/bsds500"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "torch_pruning": tp.__version__}

    base, card = load("default")
    base.eval()
    # A real photo's L at 256x256 (network units): the first BSDS500 photo, resized.
    from PIL import Image

    from polychrome.color.lab import l_to_net, rgb_to_lab

    first = photo_paths(args.data, 1)[0]
    rgb = torch.from_numpy(__import__("numpy").asarray(Image.open(first).convert("RGB").resize((256, 256)))).float()
    x = l_to_net(rgb_to_lab(rgb.permute(2, 0, 1)[None] / 255)[:, :1])

    log("== 1. profile: default model, 256x256, fp32, 1 thread (ms per call of each leaf module)")
    rows = profile_modules(base, x)
    total = sum(r[0] for r in rows)
    log(f"   leaf modules together: {total:.1f} ms")
    for t, n, m in rows[:15]:
        log(f"   {t:6.2f} ms {100 * t / total:5.1f}%  {n:40s} {m}")
    results["profile"] = [{"ms": round(t, 3), "module": n} for t, n, _ in rows[:30]]

    models = {"default": base}
    for ratio in args.ratios:
        log(f"== 2. prune {ratio:.0%} of each group's channels")
        pruned, removed = prune(base, ratio, x)
        ref_hooks = masked_reference(base, removed)
        with torch.no_grad():
            want, got = base(x), pruned(x)
        for h in ref_hooks:
            h.remove()
        diff = (want - got).abs().max().item()
        log(f"   pruned == unpruned with the same channels zeroed: max |diff| {diff:.2e} (ab_net units)")
        if diff > 1e-4:
            raise SystemExit(f"pruning check failed: {diff}")
        results.setdefault("check_max_abs_diff", {})[f"{ratio:g}"] = diff
        models[f"pruned{int(ratio * 100)}"] = pruned
        if args.finetune_steps:
            ft = copy.deepcopy(pruned)
            log(f"== 3. fine-tune pruned{int(ratio * 100)} for {args.finetune_steps} steps")
            t = time.perf_counter()
            losses = finetune(ft, args.finetune_steps)
            results.setdefault("finetune", {})[f"pruned{int(ratio * 100)}+ft"] = {
                "steps": args.finetune_steps, "seconds": round(time.perf_counter() - t, 1),
                "loss_first20": statistics.mean(losses[:20]), "loss_last20": statistics.mean(losses[-20:])}
            models[f"pruned{int(ratio * 100)}+ft"] = ft
    for name, m in models.items():
        torch.save(m, args.work / f"{name}.pt")

    log(f"== 4. speed: 256x256, fp32, 1 thread, {args.repeats} interleaved repeats, median")
    speed = interleaved_ms(models, x, args.repeats)
    for name, m in models.items():
        macs, params = tp.utils.count_ops_and_params(m, x)
        speed[name].update(params=params, macs=macs, speedup=speed["default"]["median_ms"] / speed[name]["median_ms"])
        s = speed[name]
        log(f"   {name:14s} {s['median_ms']:7.1f} ms ({s['min_ms']:.1f}-{s['max_ms']:.1f})  {s['speedup']:.2f}x  "
            f"params {params / 1e6:.2f} M  MACs {macs / 1e9:.2f} G")
    results["speed"] = speed

    log(f"== 5. accuracy: first {args.photos} photos of {args.data}, working size 256")
    paths = photo_paths(args.data, args.photos)
    variants = {name: (Colorizer(m, card), None) for name, m in models.items()}
    scores = score_photos(variants, paths, Path(args.data), dict.fromkeys(variants, 256), progress=False)
    acc = {}
    for name in models:
        s = summarise(name, variants[name][0], args.data, 256, args.photos, scores.rows[name], scores.skipped)
        acc[name] = {"n": s["n"], "mean": s["mean"], "grey": s["grey"], "reference": s["reference"]}
    results["accuracy"] = acc
    g = acc["default"]["grey"]
    log(f"   {'model':14s} {'PSNR':>7s} {'CIEDE2000':>9s} {'colourful':>9s} {'SSIM':>6s}")
    log(f"   {'grey':14s} {g['psnr']:7.2f} {g['ciede2000']:9.2f} {g['colorfulness']:9.1f} {g['ssim']:6.3f}")
    for name, a in acc.items():
        m = a["mean"]
        log(f"   {name:14s} {m['psnr']:7.2f} {m['ciede2000']:9.2f} {m['colorfulness']:9.1f} {m['ssim']:6.3f}")
    log(f"   originals' colourfulness {acc['default']['reference']['colorfulness']:.1f}; n = {acc['default']['n']}")
    (args.work / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
