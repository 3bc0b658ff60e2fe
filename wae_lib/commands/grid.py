"""``python -m wae_lib grid MODEL... --data-root D --out F.png``: held-out faces x paintings through one or more
models, one labelled grid (wae_lib.report.figures.held_out_grid): the figure an ablation is looked at with, on the
prepared held-out sets (content_eval: people in no training set; style_eval: paintings in none).
"""

from __future__ import annotations

HELP = "held-out faces x paintings through one or more models, one labelled grid (an ablation's figure)"
DESCRIPTION = __doc__
FACES = "0,1,3,4,7,8,9,19"  # the content_eval faces of the CLI grids in reports/ablations/content_code.md
PAINTINGS = "4,9,11,12"  # style_eval: The Great Wave, a night-city painting, Starry Night, The Scream (data-large)


def add_arguments(parser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL", help="a shipped name (pretrained, pretrained-paper) "
                                                                     "or a run folder; one block of rows each")
    parser.add_argument("--data-root", required=True, help="the prepared data whose held-out sets are shown")
    parser.add_argument("--faces", default=FACES, help=f"content_eval indices, comma-separated (default {FACES})")
    parser.add_argument("--paintings", default=PAINTINGS,
                        help=f"style_eval indices, comma-separated (default {PAINTINGS})")
    parser.add_argument("--caption", default="", help="a line under the grid (the sets and indices are added)")
    parser.add_argument("--out", required=True, help="the grid (.png; its layout .png.json beside it)")
    parser.add_argument("--replace", action="store_true", help="replace an existing grid")


def run(args) -> int:
    from ..data.layout import resolve_data_root
    from ..eval.images import load_set, parse_indices, style_names
    from ..model.run import load_model, resolve_model
    from ..report.figures import held_out_grid
    from ..utils import output_pair

    out = output_pair(args.out, ".png", ".png.json", args.replace)
    root = resolve_data_root(args.data_root)
    faces, paintings, names = load_set(root, "content_eval"), load_set(root, "style_eval"), style_names(root)
    f, p = parse_indices(args.faces, "--faces", len(faces)), parse_indices(args.paintings, "--paintings", len(paintings))
    models = [(resolve_model(m).label, load_model(m)) for m in args.models]  # fails before any drawing
    caption = (f"{args.caption + '; ' if args.caption else ''}held-out faces (content_eval {' '.join(map(str, f))}) x "
               f"paintings (style_eval {' '.join(map(str, p))}, first column) of {root}")
    held_out_grid(models, faces[f], paintings[p], [names[i] for i in p], out, caption=caption)
    print(f"wrote {out} ({len(models)} models x {len(p)} paintings x {len(f)} faces)")
    return 0
