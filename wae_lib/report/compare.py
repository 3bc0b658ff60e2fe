"""Side by side with the classic methods (issue 9): the same (content, style) pairs through every method, the
same measures, the time per image and the training cost, each as a ratio to our model.

Methods (wae_lib.baselines): Gatys et al. (2016) optimisation, AdaIN (Huang & Belongie 2017), WCT (Li et al.
2017) and the Reinhard et al. (2001) colour transfer, the floor. All at 64x64 with the VGG16 our model uses.

Measures, per method, on the transfers of the same pairs (wae_lib.eval.tables.transfer_metrics):
- style: Gram distance to the style image at our style layers, colour distance (sliced Wasserstein in Lab), and
  style retrieval (is the nearest style its own?) by Gram and by colour;
- content: VGG relu4_2 distance to the content face and content retrieval;
- identity: dlib embedding distance to the content face and identity match among the held-out people;
- FID / KID of the transfers against every held-out face, with one feature extractor for all methods;
- seconds per image at batch 1 and at a large batch, on the machine the notebook runs on;
- training cost: images seen and seconds, paid once for every style (ours, AdaIN, WCT) or per image (Gatys).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..baselines.build import BASELINES, build_baseline
from ..config import SHIPPED_MODELS, EvaluationError, check
from ..data.layout import load_eval_identities, load_set_info
from ..eval.cache import all_pairs
from ..eval.fid import extract_features, fid_kid
from ..eval.images import figure_styles, load_set
from ..eval.metrics import EvalVGG
from ..eval.scorecard import spread_over_identities
from ..eval.stats import crossed_mean_ci
from ..eval.tables import TABLE_FILES, TransferReference, transfer_metrics
from ..eval.verdicts import fmt_ci, fmt_number
from ..grids import blank_cells
from ..model.pretrained import WEIGHTS_DIR, card_file, shipped_file, shipped_training_cost
from ..model.run import load_model, training_cost

OURS = "ours"  # the key of our model's row: every ratio column divides by it
OURS_PAPER = "ours_paper"  # the key of the same networks trained as the paper says (issue 16), shown beside it


@dataclass
class Method:
    """One way to transfer: ``transfer(content N, style 1 or N, alpha) -> N images`` plus what training cost."""

    key: str
    label: str
    transfer: Callable[..., torch.Tensor]
    training: str  # how it is paid: "once for all styles", "per transfer (optimisation)", "none"
    training_images: float = float("nan")  # images seen in training (nan: none or unknown)
    training_seconds: float = float("nan")  # wall time of training on its machine (nan: none or unknown)
    max_batch: int = 64  # transfers computed at most this many at a time (Gatys: memory of L-BFGS history)
    training_steps: float = float("nan")  # optimiser steps of its training (nan: none or unknown)
    final_loss: float = float("nan")  # its own training loss at the end (decoders: mean of the last logged steps)
    weights: str = ""  # where its trained weights came from (shipped file, run folder), "" for none


def resolve_model(model: str, models_dir: str | Path, tables_dir: str | Path) -> str:
    """``"best"``: the run folder of ``models_dir`` that notebook 04 ranked best (C4 balance table in
    ``tables_dir``); anything else (a shipped name such as ``"pretrained"``, a run folder) is returned as it is."""
    if model != "best":
        return model
    path = Path(tables_dir) / TABLE_FILES["balance"]
    if not path.is_file():
        raise FileNotFoundError(f"parameter model = 'best' needs notebook 04's {path}; run 04_transfer.ipynb with "
                                f"tables_dir={str(tables_dir)!r} first, or set model to 'pretrained' or a run folder")
    import pandas as pd

    ranking = pd.read_csv(path)
    return str(Path(models_dir) / ranking.loc[ranking["best"].astype(bool), "run"].iloc[0])


def decoder_method(key: str, baseline, run: str | Path, name: str) -> Method:
    """AdaIN or WCT with its decoders' training budget and final loss: from the shipped file's record
    (wae_lib.baselines.shipped) or from the run folder's log."""
    info = baseline.checkpoint_info
    record = info.get("shipped")
    if record:
        images, seconds, final = record["images"], record["training_seconds"], record["final_loss"]
        where = f"shipped ({'converged' if record['converged'] else 'not converged'})"
    else:
        from ..baselines.train import final_loss, read_log

        images, seconds = training_cost(run, info["config"]["batch_size"])
        final = final_loss(read_log(run)[0])
        where = f"trained: {run}"
    return baseline_method(key, baseline, f"{name} ({info['step']} steps)", "once for all styles", images, seconds,
                           training_steps=info["step"], final_loss=final, weights=where)


def our_method(model, label: str, training_images: float = float("nan"),
               training_seconds: float = float("nan"), key: str = OURS) -> Method:
    """Our model: one forward pass with the style latent of the style image (alpha = the model's strength);
    ``key`` OURS_PAPER for the paper-trained one beside it."""

    def transfer(content, style, alpha=1.0):
        dev = next(model.parameters()).device
        return model.transfer(content.to(dev), style.to(dev), strength=alpha).cpu()

    return Method(key, label, transfer, "once for all styles", training_images, training_seconds)


def baseline_method(key: str, baseline, label: str, training: str, training_images: float = float("nan"),
                    training_seconds: float = float("nan"), max_batch: int = 64, **cost: Any) -> Method:
    """A baseline of wae_lib.baselines (anything with ``transfer(content, style, alpha)``) as a Method; ``cost``:
    Method's training_steps, final_loss, weights."""

    def transfer(content, style, alpha=1.0):
        return baseline.transfer(content, style, alpha=alpha).detach().float().cpu()

    return Method(key, label, transfer, training, training_images, training_seconds, max_batch, **cost)


@dataclass
class HeldOutPairs:
    """The comparison's inputs: ``n_content`` held-out faces spread over the people, ``n_styles`` figure styles,
    and every (face, style) pair (pair k = content[ci[k]], styles[si[k]])."""

    faces_all: torch.Tensor  # every held-out face (the FID reference)
    content: torch.Tensor
    identities: np.ndarray | None  # the person of each content face (None: unknown)
    styles: torch.Tensor
    style_names: list[str]
    ci: torch.Tensor
    si: torch.Tensor
    source: str  # the data set's label (sets/info.json)

    def describe(self) -> str:
        # without identity.csv each held-out face counts as its own person (as the scorecard spreads them)
        people = (f"of {len(set(self.identities.tolist()))} people" if self.identities is not None
                  else "(no identity.csv: people unknown)")
        return (f"{len(self.content)} held-out faces {people} x {len(self.styles)} styles = "
                f"{len(self.ci)} pairs per method")


def held_out_pairs(data_root: str | Path, n_content: int, n_styles: int) -> HeldOutPairs:
    faces_all = load_set(data_root, "content_eval")
    ids = load_eval_identities(data_root)
    pick = spread_over_identities(ids if ids is not None else np.arange(len(faces_all)), n_content)
    styles, names = figure_styles(data_root, n_styles)
    ci, si = all_pairs(len(pick), len(styles))
    return HeldOutPairs(faces_all, faces_all[pick], ids[pick] if ids is not None else None, styles, list(names),
                        ci, si, load_set_info(data_root)["source"])


def shipped_card(name: str) -> str:
    """The card of a shipped model, as a path inside the repository."""
    return str(card_file(shipped_file(name)).relative_to(WEIGHTS_DIR.parents[1]))


def comparison_caption(net, model: str, pairs: HeldOutPairs, alpha: float) -> str:
    cfg = net.config
    # a model that started from other weights (Config.init_from) states only its last stage: say where the rest is
    schedule = (f"last stage: {cfg.scale_note}; the whole schedule: "
                + (shipped_card(model) if model in SHIPPED_MODELS else f"{model}/metadata.json")
                if cfg.init_from else cfg.scale_note)
    # the profile is the one our model was trained with (a shipped model's, not the reports folder's run)
    parts = (f"data: {pairs.source}", f"VGG16: {net.vgg_source.label}",
             f"ours: {Path(model).name} (trained with profile={cfg.profile}, content {cfg.content_label}, "
             f"{cfg.data} set)", schedule,
             f"64x64, alpha {alpha}")
    return " | ".join(p for p in parts if p)


def comparison_methods(net, model: str, paper_model: str, baselines_dir: str, gatys_steps: int, device,
                       model_log: str = "") -> list[Method]:
    """Ours (``net``, loaded from ``model``), the paper-trained model beside it (``paper_model``, "" for none),
    Gatys, AdaIN and WCT (decoders: ``baselines_dir`` "shipped" or a folder of run folders adain/ and wct/) and
    the Reinhard floor, all on ``net``'s VGG16 (the very weights our model was trained against)."""
    vgg = net.vgg
    check({"relu1_1", "relu2_1", "relu3_1"} <= set(vgg.layers), "model", model,
          "a model whose VGG16 reaches relu3_1 (the baselines' layers)", EvaluationError)
    def cost(name: str, log: str, batch_size: int) -> tuple[float, float]:
        """A shipped model's from its file and card, a run's from its log."""
        if not log and name in SHIPPED_MODELS:
            return shipped_training_cost(name)
        return training_cost(log, batch_size)

    our_log = model_log or (model if Path(model).is_dir() else "")
    methods = [our_method(net, f"ours ({Path(model).name})", *cost(model, our_log, net.config.batch_size))]
    if paper_model:  # the same networks trained as the paper says (reconstruction only): what training changes
        paper_net = load_model(paper_model, device=device)
        methods.append(our_method(paper_net, f"ours, paper training ({Path(paper_model).name})",
                                  *cost(paper_model, paper_model if Path(paper_model).is_dir() else "",
                                        paper_net.config.batch_size), key=OURS_PAPER))
    methods.append(baseline_method("gatys", build_baseline("gatys", vgg=vgg, steps=gatys_steps, device=device),
                                   f"Gatys ({gatys_steps} it.)", "per transfer (optimisation)", max_batch=64))
    for key, name in (("adain", "AdaIN"), ("wct", "WCT")):
        run = "shipped" if baselines_dir == "shipped" else Path(baselines_dir) / key
        methods.append(decoder_method(key, build_baseline(key, vgg=vgg, weights=run, device=device), run, name))
    methods.append(baseline_method("reinhard", build_baseline("reinhard"), "Reinhard (colour floor)", "none"))
    return methods


def describe_methods(methods: Sequence[Method]) -> str:
    """One line per method: its label and training cost (and a decoder's final loss and weights), then what
    each baseline is."""
    def cost(m: Method) -> str:
        parts = ([f"{m.training_images:,.0f} images"] if m.training_images == m.training_images else []) \
            + ([f"{m.training_seconds / 60:.1f} min"] if m.training_seconds == m.training_seconds else [])
        return m.training + (f", {', '.join(parts)}" if parts else "")

    lines = [f"{m.key:9s} {m.label:32s} training: {cost(m)}"
             + (f", final loss {m.final_loss:.4g}, {m.weights}" if m.weights else "") for m in methods]
    return "\n".join(lines + [f"  {k}: {v}" for k, v in BASELINES.items()])


def pair_transfers(method: Method, content: torch.Tensor, styles: torch.Tensor, ci: torch.Tensor,
                   si: torch.Tensor, batch_size: int = 64, alpha: float = 1.0, progress=None) -> torch.Tensor:
    """Transfers of pairs (content[ci[k]], styles[si[k]]), ``batch_size`` pairs at a time, on CPU."""
    step = max(1, min(batch_size, method.max_batch))
    out = []
    for i in range(0, len(ci), step):
        out.append(method.transfer(content[ci[i:i + step]], styles[si[i:i + step]], alpha).clamp(0, 1))
        if progress is not None:
            progress.update(len(ci[i:i + step]))
    return torch.cat(out)


def seconds_per_image(method: Method, content: torch.Tensor, style: torch.Tensor, batch: int,
                      min_seconds: float = 1.0, max_repeats: int = 20) -> float:
    """Wall seconds per image of ``method`` on a batch of ``batch`` content images and one style image.

    One untimed call first (allocations, lazy initialisation), then calls until ``min_seconds`` have passed.
    Content images are repeated to fill the batch: the cost does not depend on which images they are.
    """
    reps = (batch + len(content) - 1) // len(content)
    x = content.repeat(reps, 1, 1, 1)[:batch]
    s = style[:1]
    method.transfer(x[:1], s)
    n, t0 = 0, time.perf_counter()
    while True:
        method.transfer(x, s)
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds or n >= max_repeats:
            return elapsed / (n * batch)


def quality_rows(methods: Sequence[Method], transfers: dict[str, torch.Tensor], content: torch.Tensor,
                 styles: torch.Tensor, ci: torch.Tensor, si: torch.Tensor, vgg: EvalVGG,
                 mean_face: torch.Tensor, identities: np.ndarray | None, identity: bool = True,
                 batch_size: int = 64):
    """One row per (method, pair) with tables.transfer_metrics' columns (no reconstruction columns: the
    baselines have no reconstruction, so the content image stands in for it and those columns are dropped)."""
    import pandas as pd

    ref = TransferReference.build(content, styles, vgg, mean_face, identities, identity, batch_size)
    chance = {"style_retrieval_chance": 1 / len(styles), "content_retrieval_chance": 1 / len(content),
              **ref.identity.columns}
    frames = []
    for m in methods:
        cols = transfer_metrics(ref, vgg, transfers[m.key], content, ci, si, batch_size=batch_size)
        cols = {k: v for k, v in cols.items() if not k.endswith(("_recon", "_content"))}
        frames.append(pd.DataFrame({"method": m.key, "label": m.label, "content_image": ci.numpy(),
                                    "style_image": si.numpy(), **cols, **chance}))
    return pd.concat(frames, ignore_index=True)


def fid_rows(methods: Sequence[Method], transfers: dict[str, torch.Tensor], real: torch.Tensor,
             extractor, n_boot: int = 100, seed: int = 0, batch_size: int = 64):
    """FID / KID of each method's transfers against the ``real`` images, one extractor and sample set for all."""
    import pandas as pd

    f_real = extract_features(extractor, real, batch_size)
    rows = [{"method": m.key, **fid_kid(f_real, extract_features(extractor, transfers[m.key], batch_size),
                                        n_boot, seed=seed)} for m in methods]
    return pd.DataFrame.from_records(rows).assign(feature_extractor=extractor.kind,
                                                  feature_extractor_label=extractor.label)


SUMMARY_METRICS = ("style_distance", "color_distance", "style_retrieval_gram", "style_retrieval_color",
                   "content_distance", "content_retrieval", "identity_distance", "identity_match")


def pair_interval(per_pair, method: str, metric: str, n_boot: int = 1000, seed: int = 0
                  ) -> tuple[float, float, float]:
    """(mean, low, high) of one method's per-pair ``metric`` over its faces x styles table, by the pigeonhole
    bootstrap (wae_lib.eval.stats.crossed_mean_ci): the faces and the styles are both samples. One ``seed`` for
    every method: the same resamples of the same pairs."""
    rows = per_pair[per_pair["method"] == method]
    table = rows.pivot_table(index="content_image", columns="style_image", values=metric, aggfunc="mean")
    return crossed_mean_ci(table.to_numpy(dtype=float), n_boot=n_boot, seed=seed)


def summary_table(methods: Sequence[Method], per_pair, fid, timing: dict[str, dict[int, float]],
                  n_boot: int = 1000, seed: int = 0):
    """One row per method: mean of every per-pair measure with its 95% interval over faces and styles
    (``<measure>_ci_low`` / ``_ci_high``, :func:`pair_interval`), FID / KID, seconds per image at each timed batch
    size, training cost; and for each numeric column its ratio to our model (``<column>_vs_ours``)."""
    import pandas as pd

    rows = []
    for m in methods:
        row = {"method": m.key, "label": m.label}
        for metric in SUMMARY_METRICS:
            mean, low, high = pair_interval(per_pair, m.key, metric, n_boot, seed)
            row.update({metric: mean, f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        f = fid.set_index("method").loc[m.key]
        row.update({k: f[k] for k in ("fid", "fid_ci_low", "fid_ci_high", "kid", "kid_ci_low", "kid_ci_high")
                    if k in f})  # (KID's interval: real and transferred images resampled, wae_lib.eval.fid)
        row.update({f"s_per_image_b{b}": s for b, s in sorted(timing.get(m.key, {}).items())})
        row.update({"training": m.training, "training_images": m.training_images,
                    "training_seconds": m.training_seconds, "training_steps": m.training_steps,
                    "final_loss": m.final_loss, "weights": m.weights})
        rows.append(row)
    table = pd.DataFrame.from_records(rows).set_index("method")
    if OURS in table.index:  # (losses of different methods are different quantities: no ratio)
        numeric = [c for c in table.columns if c not in ("label", "training", "training_steps", "final_loss", "weights")
                   and not c.endswith(("_ci_low", "_ci_high"))]  # (a ratio of interval bounds means nothing)
        ours = table.loc[OURS, numeric].astype(float)
        for c in numeric:
            table[f"{c}_vs_ours"] = table[c].astype(float) / ours[c]
    return table.reset_index()


def speed_ratios(timing: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
    """How many times slower than our model each method is, per batch size (>1: ours is faster)."""
    ours = timing.get(OURS, {})
    return {k: {b: s / ours[b] for b, s in t.items() if b in ours} for k, t in timing.items() if k != OURS}


def grid_rows(method_out: torch.Tensor, content: torch.Tensor, styles: torch.Tensor,
              ci: torch.Tensor, si: torch.Tensor) -> list[torch.Tensor]:
    """The content x style matrix of one method's pair transfers, as figure rows (row 1: the styles,
    column 1: the contents), for figures.save_figure."""
    rows = [torch.cat([blank_cells(), styles])]
    for i in range(len(content)):
        cells = [method_out[((ci == i) & (si == j)).nonzero()[0, 0]] for j in range(len(styles))]
        rows.append(torch.cat([content[i:i + 1], torch.stack(cells)]))
    return rows


def markdown_summary(summary) -> str:
    """The headline columns of :func:`summary_table` as a markdown table (reports' index.md)."""
    # what a reader compares (the rest, e.g. the large batch's time and the final losses, is in the CSV)
    cols = ["style_retrieval_gram", "style_retrieval_color", "content_retrieval", "identity_match", "kid"]
    cols += [c for c in summary.columns if c.startswith("s_per_image_b") and not c.endswith("_vs_ours")][:1]
    cols += ["training_images", "training_seconds"]

    def cell(r, c):
        if r[c] != r[c]:  # NaN: not applicable
            return "-"
        low, high = r.get(f"{c}_ci_low", float("nan")), r.get(f"{c}_ci_high", float("nan"))
        return fmt_ci(r[c], low, high) if low == low and high == high else fmt_number(r[c])

    head = "| method | " + " | ".join(c.replace("_", " ") for c in cols) + " |"
    lines = [head, "|---|" + "---|" * len(cols)]
    for _, r in summary.iterrows():
        lines.append(f"| {r['label']} | " + " | ".join(cell(r, c) for c in cols) + " |")
    if not any(c.endswith("_ci_low") for c in summary.columns):  # a table written before the intervals
        return "\n".join(lines)
    return "\n".join(lines + ["", "[low, high]: 95% intervals; of the per-pair measures by the pigeonhole bootstrap "
                                   "over the faces and the styles (Owen 2007; wae_lib.eval.stats.crossed_mean_ci), of "
                                   "KID by resampling the real and the transferred images (wae_lib.eval.fid)."])
