"""The models shipped in the package: load offline with one call, match their cards, are not collapsed; ours is
the default and the paper-trained one is still there (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from wae_lib import load_model
from wae_lib.config import DEFAULT_SHIPPED_MODEL, SHIPPED_MODELS
from wae_lib.model.pretrained import card_file, scorecard_file, shipped_file


@pytest.fixture(scope="module", params=sorted(SHIPPED_MODELS))
def shipped(request):
    path = shipped_file(request.param)
    assert path.is_file(), f"the repository ships {path}; it is missing"
    return request.param, load_model(request.param)


@pytest.fixture(scope="module")
def pretrained(shipped):
    return shipped[1]


def real_faces(test_data_dir, n: int = 6) -> torch.Tensor:
    files = sorted((test_data_dir / "faces").glob("*.jpg"))[:n]
    arr = np.stack([np.asarray(Image.open(f).convert("RGB").crop((25, 45, 153, 173)).resize((64, 64))) for f in files])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255


def test_shipped_file_is_small_and_documented(shipped):
    name, model = shipped
    path = shipped_file(name)
    assert path.stat().st_size < 25 * 2**20
    card = card_file(path).read_text()
    assert card.startswith(f'# Model card: `load_model("{name}")`')
    assert model.provenance["run"] in card and "non-commercial" in card
    assert f"`wae_lib/weights/{name}.pt`" in card  # the card names its own file (not a name it shipped under before)
    assert scorecard_file(path).is_file()
    # the reference networks, trained the paper's way (reference) or ours (the ours / spatial profiles: reference + our
    # fields)
    assert model.config.profile in ("reference", "ours", "spatial") and model.checkpoint_info["step"] == model.config.steps
    assert (model.config.width, model.config.style_hidden) == (0.25, 128)


def test_default_is_our_training_and_the_papers_is_kept():
    assert DEFAULT_SHIPPED_MODEL == "pretrained"
    ours, paper = load_model("pretrained").config, load_model("pretrained-paper").config
    assert (ours.objective, ours.style_injection) == ("swap", "modulate")
    assert (ours.content_map, ours.content_dim) == (16, 8)  # issue 33: the study's model codes content as a map
    assert (paper.objective, paper.style_injection, paper.content_norm) == ("paper", "concat", "none")
    assert paper.content_map == 0  # the paper's vector, unchanged


def test_the_shipped_spatial_model_transfers_at_any_size():
    model = load_model("pretrained")
    content, style = torch.rand(2, 3, 128, 96), torch.rand(1, 3, 64, 64)
    out = model.transfer(content, style)
    assert out.shape == (2, 3, 128, 96) and torch.isfinite(out).all()


def test_ours_profile_caption_states_its_own_training_fields(shipped):
    """The ours profile's caption is filled from the run's config: the shipped model (content_norm none) was once
    captioned "instance-normalised content encoder" on every output."""
    from wae_lib.config import profile_config

    assert "content_norm=none" in profile_config("ours", content_norm="none").scale_note
    assert "instance" not in profile_config("ours", content_norm="none").scale_note
    cfg = shipped[1].config
    if cfg.profile in ("ours", "spatial"):
        assert f"content_norm={cfg.content_norm}" in cfg.scale_note and f"objective={cfg.objective}" in cfg.scale_note


def test_comparison_caption_points_a_staged_model_to_its_whole_schedule(shipped):
    from types import SimpleNamespace

    from wae_lib.report.compare import comparison_caption

    name, model = shipped
    caption = comparison_caption(model, name, SimpleNamespace(source="test data"), alpha=1.0)
    assert f"{model.config.steps} steps of {model.config.batch_size}" in caption
    # ours continued other weights (Config.init_from): its own schedule is the last stage only, the card has it all
    staged = f"the whole schedule: wae_lib/weights/{name}.card.md" in caption
    assert staged == bool(model.config.init_from)


def test_a_folder_named_like_a_shipped_model_does_not_replace_it(tmp_path, monkeypatch):
    (tmp_path / "pretrained").mkdir()  # issue 18: an empty folder made the default command fail
    monkeypatch.chdir(tmp_path)
    assert load_model("pretrained").provenance["run"] == torch.load(
        shipped_file("pretrained"), weights_only=True)["provenance"]["run"]


def test_shipped_model_transfers_depend_on_content_and_style(pretrained, test_data_dir):
    """Guards against the collapses seen in training (black or flat outputs; one face for every content)."""
    faces = real_faces(test_data_dir)
    recon = pretrained.reconstruct(faces)
    assert recon.std() > 0.1  # not a flat image
    psnr = 10 * torch.log10(1 / (recon - faces).pow(2).flatten(1).mean(1))
    assert psnr.mean() > 14  # recognisably the input's layout and colours (a flat grey image scores ~12)
    a = pretrained.transfer(faces, faces[:1])
    b = pretrained.transfer(faces, faces[1:2].flip(1))  # another style: the channels swapped
    assert (a - b).abs().mean() > 0.01  # the style latent matters
    assert (a[0] - a[1:]).abs().mean() > 0.01  # the content latent matters


def test_export_card_can_show_earlier_scorecards_rows(tmp_path):
    """`export --compare CSV=LABEL`: the model a new export replaces stays in its card's table, the floor once."""
    import pandas as pd
    import pytest as _pytest

    from wae_lib.eval.ship import earlier_rows

    csv = tmp_path / "old.scorecard.csv"
    pd.DataFrame({"run": ["Reinhard colour transfer (floor)", "ours-mixed_c256"], "psnr": [float("nan"), 16.4],
                  "content_retrieval": [0.74, 0.07]}).to_csv(csv, index=False)
    rows = earlier_rows([f"{csv}=previous pretrained (12,800 images)"])
    assert list(rows["run"]) == ["previous pretrained (12,800 images)"] and rows["psnr"].tolist() == [16.4]
    assert earlier_rows([]).empty
    with _pytest.raises(ValueError, match="expected CSV=LABEL"):
        earlier_rows([str(csv)])
    with _pytest.raises(ValueError, match="cannot read"):
        earlier_rows([f"{tmp_path / 'missing.csv'}=x"])
