"""``python -m wae_lib scorecard MODEL... --data-root D [--size N] --out T.csv``: the held-out scorecard
(wae_lib.eval.scorecard) of shipped models, run folders and the baselines, without shipping anything (``export``
scores and ships). ``--size 128``: a fully convolutional model above its training size, the held-out faces cropped
again at that size from their source files (issue 33 item 3). Each row carries 95% intervals of identity kept and
style carried (crossed bootstrap over faces and paintings), the axes of the style-identity frontier.
"""

from __future__ import annotations

from pathlib import Path

HELP = "score shipped models, run folders or baselines on the held-out scorecard (any --size for a map model)"
DESCRIPTION = __doc__


def add_arguments(parser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL", help="a shipped name (pretrained, pretrained-paper), a "
                        "run folder, or a baseline: adain, wct (their shipped decoders), gatys")
    parser.add_argument("--gatys-steps", type=int, default=100, help="L-BFGS iterations per Gatys transfer")
    parser.add_argument("--data-root", required=True, help="the prepared data whose held-out sets to score on")
    parser.add_argument("--size", type=int, default=64, help="the faces' size in pixels (64: the prepared sets; "
                        "larger: cropped again from their source files)")
    parser.add_argument("--n-content", type=int, default=48, help="held-out faces used as transfer content")
    parser.add_argument("--out", required=True, help="the table to write (CSV; a .md beside it)")
    parser.add_argument("--replace", action="store_true", help="replace an existing --out table")


def run(args) -> int:
    import pandas as pd

    from ..config import SHIPPED_MODELS
    from ..eval.scorecard import HeldOut, markdown, score_method, score_model, score_reinhard
    from ..model.run import load_model
    from ..utils import UserError, atomic_write_text, output_pair

    out = output_pair(args.out, ".csv", ".md", args.replace)
    if not (Path(args.data_root) / "sets" / "info.json").is_file():
        raise UserError(f"--data-root {args.data_root}: no sets/info.json (prepare it with python -m wae_lib data all)")
    if args.size < 64:
        raise UserError(f"--size {args.size}: expected 64 or more (the models trained at 64 px)")
    evalset = HeldOut.load(args.data_root, n_content=args.n_content, size=args.size)
    rows = [{**score_reinhard(evalset), "size": args.size}]
    for name in args.models:
        print(f"scoring {name} at {args.size} px on {len(evalset.faces)} held-out faces", flush=True)
        if name in ("adain", "wct", "gatys"):
            from ..baselines.build import build_baseline

            method = build_baseline(name, weights=None if name == "gatys" else "shipped",
                                    **({"steps": args.gatys_steps} if name == "gatys" else {}))
            label = f"gatys ({args.gatys_steps} it.)" if name == "gatys" else name
            rows.append({"run": label, "size": args.size, **score_method(method, evalset)})
            continue
        try:
            model = load_model(name)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise UserError(f"model {name}: {exc}") from None
        if args.size != 64 and not getattr(model.config, "content_map", 0):
            raise UserError(f"model {name}: a vector content code takes 64 px images only; "
                            f"--size {args.size} needs a spatial content map (Config.content_map)")
        label = name if name in SHIPPED_MODELS else Path(name).name  # a run folder: its name, as export labels it
        rows.append({"run": label, "size": args.size, **score_model(model, evalset)})
    table = pd.DataFrame(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, table.to_csv(index=False))
    atomic_write_text(out.with_suffix(".md"), markdown(table, evalset))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0
