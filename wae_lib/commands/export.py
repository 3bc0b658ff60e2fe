"""``python -m wae_lib export MODELS_DIR|MODEL.pt --data-root D --out FILE.pt [--replace]``: score a sweep's models
on held-out people and write the best as a model file with its card and scorecard (wae_lib.eval.ship: the rules).

    python -m wae_lib export models/reference-shared-data-large --data-root data/processed/shared-data-large \
        --out wae_lib/weights/pretrained.pt --replace

``--out`` is required (nothing inside the package is written unless named); an existing file is replaced only with
``--replace``, and then only by a model that scores at least as well and trained on at least as many images.
Scoring costs about a minute per model on 2 CPU cores (dlib embeddings).
"""

from __future__ import annotations

from pathlib import Path

HELP = "score a sweep's models on held-out people and write one as a model file (--out; --replace)"
DESCRIPTION = __doc__


def add_arguments(parser) -> None:
    parser.add_argument("models_dir", type=Path, help="a sweep's folder of run folders, or one exported model file (.pt: "
                                                 "e.g. a lent GPU's ship/model.pt, whose run folder stayed there)")
    parser.add_argument("--data-root", required=True, type=Path, help="its prepared data (held-out sets)")
    parser.add_argument("--out", type=Path, help="the model file to write (required; wae_lib/weights/pretrained.pt "
                                                 "ships it as load_model('pretrained'))")
    parser.add_argument("--replace", action="store_true", help="replace an existing --out (with its card and scorecard) "
                        "if this model scores at least as well on the held-out scorecard and trained on at least as "
                        "many images")
    parser.add_argument("--run", help="export this run folder name instead of the best by balance")
    parser.add_argument("--summary", type=Path, help="pick the best run from this transfer_summary.csv (notebook 04's "
                                                      "held-out table) instead of scoring every run: much faster")
    parser.add_argument("--hardware", default="2 CPU cores", help="where it trained, for the model card")
    parser.add_argument("--origin", default="", help="how the exported run came about, for the model card (e.g. "
                                                     "which sweep model it was resumed from)")
    parser.add_argument("--compare", nargs="*", default=[], metavar="CSV=LABEL",
                    help="also show these earlier scorecards' model rows in the card's table (e.g. the model this "
                             "one replaces); the same held-out sets, scored before")


def run(args) -> int:
    from ..eval.ship import ExportRequest, export

    return export(ExportRequest(args.models_dir, args.data_root, args.out, args.replace, args.run, args.summary,
                                args.hardware, args.origin, list(args.compare)))
