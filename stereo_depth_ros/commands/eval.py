"""``stereo-depth eval``: models on a stereo dataset, side by side: table, JSON, Markdown, figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DATASETS = ("middlebury", "kitti", "sceneflow", "eth3d", "folder", "synthetic")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--root", help="dataset directory (not needed for synthetic)")
    parser.add_argument("--model", action="append", dest="models", metavar="MODEL",
                        help="default | sgbm | learned | a checkpoint path; repeat to compare side by side "
                             "(default: default)")
    parser.add_argument("--reference", default=None, metavar="MODEL",
                        help="the model whose covered pixels give the third view (default: the first "
                             "--model; added to the run if it is not one of them)")
    parser.add_argument("--max-disp", type=float, default=None,
                        help="one search range for every pair (default: each scene's own range where the "
                             "dataset gives one, as Middlebury's ndisp, else 64 px for SGBM and the "
                             "network's own range)")
    parser.add_argument("--pixel-weighted", action="store_true",
                        help="pool pixels over the dataset instead of averaging scene by scene")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N pairs")
    parser.add_argument("--out", default="eval_out", help="report directory (default eval_out)")
    parser.add_argument("--figures", type=int, default=4, help="frames drawn as PNG panels (default 4)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (learned models)")
    parser.add_argument("--precision", default="auto", help="auto | fp32 | fp16 | bf16 (learned models)")
    synth = parser.add_argument_group("synthetic dataset")
    synth.add_argument("--count", type=int, default=20, help="number of held-out scenes (default 20)")
    synth.add_argument("--seed", type=int, default=None,
                       help="first seed (default 2000000; seeds below 1000000 are the training range, "
                            "1000000+ a few the training validation)")
    synth.add_argument("--width", type=int, default=640)
    synth.add_argument("--height", type=int, default=480)


def run(args: argparse.Namespace) -> int:
    from stereo_depth_ros.backends import BackendError
    from stereo_depth_ros.evaluation import report
    from stereo_depth_ros.evaluation.models import build_backend
    from stereo_depth_ros.evaluation.run_dataset import (
        EVAL_SEED_START,
        HELD_OUT_SEED_START,
        dataset_source,
        evaluate,
        sections_for,
        synthetic_source,
    )

    specs = args.models or ["default"]
    reference = args.reference or specs[0]
    if reference not in specs:
        specs = [reference, *specs]
    meta: dict[str, object] = {"dataset": args.dataset}
    try:
        if args.dataset == "synthetic":
            seed = EVAL_SEED_START if args.seed is None else args.seed
            if seed < HELD_OUT_SEED_START:
                print(f"warning: seed {seed} is in the training range (< {HELD_OUT_SEED_START}); "
                      "these scenes are not held out", file=sys.stderr)
            if args.max_disp is None:  # the generator's range, scaled with the image width
                args.max_disp = 128.0 * args.width / 640.0
            source = synthetic_source(args.count, seed, args.width, args.height, args.max_disp)
            meta |= {"seeds": f"{seed}..{seed + args.count - 1}", "size": f"{args.width}x{args.height}"}
        else:
            if not args.root:
                print(f"stereo-depth eval: --root is required for --dataset {args.dataset}", file=sys.stderr)
                return 2
            if not Path(args.root).is_dir():
                print(f"stereo-depth eval: dataset root {args.root} is not a directory", file=sys.stderr)
                return 2
            source = dataset_source(args.dataset, args.root)
            meta["root"] = str(args.root)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"stereo-depth eval: cannot open the {args.dataset} dataset: {exc}", file=sys.stderr)
        return 2
    if not source:
        print(f"stereo-depth eval: no stereo pairs found in {args.root}", file=sys.stderr)
        return 2

    models = []
    for spec in specs:
        try:
            models.append(build_backend(spec, args.max_disp, args.device, args.precision))
        except BackendError as exc:
            print(f"stereo-depth eval: model {spec!r}: {exc}", file=sys.stderr)
            return 2
    ref_index = specs.index(reference)
    runs, figures = evaluate(source, models, args.out, args.max_disp, args.figures, progress=True,
                             limit=args.limit, reference=ref_index, scene_range=args.max_disp is None,
                             by_pixels=args.pixel_weighted)
    ref_label = runs[ref_index].model
    meta |= {"search range": f"{args.max_disp:g} px for every pair" if args.max_disp else
             "each scene's own range where the dataset gives one (ndisp), else the model's default",
             "averaging": "pixels pooled over the dataset" if args.pixel_weighted else
             "mean over scenes (every scene weighs the same)",
             "reference": ref_label}
    sections = sections_for(runs, ref_label)
    title = f"Stereo evaluation on {args.dataset}"
    paths = report.write_report(args.out, title, runs, meta, figures=figures, sections=sections)
    for heading, columns in sections:
        print(f"\n{heading}:")
        print(report.text_table(*report.table_rows(runs, columns)))
    print()
    for run in runs:
        for note in run.notes:
            print(f"{run.model}: {note}")
        for err in run.errors:
            print(f"{run.model}: skipped {err['error']}", file=sys.stderr)
    print(f"report: {paths['markdown']}  results: {paths['json']}  figures: {len(figures)} in "
          f"{Path(args.out) / 'figures'}")
    evaluated = sum(len(r.frames) for r in runs)
    return 0 if evaluated else 1
