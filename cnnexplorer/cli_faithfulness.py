"""The ``cnnexplorer faithfulness`` command: how faithful each heatmap method is over a data set.

Deletion and insertion AUC (RISE), ROAD MoRF and LeRF (noisy linear imputation, 10–90 % removed)
and, with ``--boxes``, the pointing game, per method and for a random map (the baseline row).
``--nproc-per-node N`` shares the images among N processes under torchrun; the table is one process's.
"""

from __future__ import annotations

from cnnexplorer.cli_shared import add_common, add_model_options, emit, load_model
from cnnexplorer.cli_train import add_launcher_flags, run_sharded
from cnnexplorer.pictures.flags import bounded_int

BOXES_HELP = ("boxes for the pointing game: JSON {\"sub/file.jpg\": [x0, y0, x1, y1], …} or CSV lines "
              "sub/file.jpg,x0,y0,x1,y1, in the original image's pixels, files named relative to the data folder "
              "(built-in data: by the image's number)")


def add_parser(sub) -> None:
    from cnnexplorer.core.attribution.methods import METHODS

    parser = sub.add_parser("faithfulness", help="measure heatmap methods: deletion, insertion, ROAD, pointing game",
                            description="Scores each method's maps against a random map. A labelled set explains each "
                                        "image's label, an unlabelled folder each image's top prediction. Lower "
                                        "deletion AUC and ROAD MoRF, higher insertion AUC, ROAD LeRF and pointing are "
                                        "more faithful.")
    add_model_options(parser)
    parser.add_argument("--data", required=True, metavar="DATASPEC", help="a folder of images or a data spec "
                        "(builtin:shapes, builtin:digits, mnist:ROOT …)")
    parser.add_argument("--methods", default="gradcam,saliency,inputxgrad", metavar="M1,M2",
                        help=f"heatmap methods, comma-separated (default gradcam,saliency,inputxgrad; any of "
                             f"{', '.join(METHODS)}); the random map is always added")
    parser.add_argument("--steps", type=bounded_int(2, 1000), default=20,
                        help="deletion and insertion steps (default: 20)")
    parser.add_argument("--boxes", metavar="FILE", help=BOXES_HELP)
    parser.add_argument("--limit", type=bounded_int(1), metavar="N", help="only the first N images")
    parser.add_argument("--batch-size", type=bounded_int(1, 4096), default=32, help="images explained at a time "
                        "(default: 32)")
    parser.add_argument("--no-road", action="store_true", help="leave out ROAD (its imputation is the slow part)")
    parser.add_argument("--download", action="store_true", help="download a torchvision dataset if it is missing")
    add_launcher_flags(parser)
    add_common(parser)


def run(args) -> int:
    """Measure here, or with ``--nproc-per-node N`` under torchrun (each rank its batches; rank 0 reports)."""
    return run_sharded(args, "faithfulness", add_parser, _measure)


def _measure(args, main: bool = True) -> int:
    from cnnexplorer.core.dataset.probe import open_probe_job
    from cnnexplorer.core.faithfulness import dataset_job, read_boxes
    from cnnexplorer.core.faithfulness.run import check_methods
    from cnnexplorer.core.jobs import TextProgressBar, drive

    methods = check_methods(args.methods.split(","))
    boxes = read_boxes(args.boxes) if args.boxes else None
    handle = load_model(args)
    bar = TextProgressBar()
    try:
        probe = drive(open_probe_job(args.data, args.download), bar)
        table = drive(dataset_job(handle, probe, methods, args.steps, args.batch_size, boxes, args.limit, args.seed,
                                  not args.no_road), bar)
    finally:
        bar.close()
    payload = {"model": handle.spec, "data": args.data, "steps": args.steps, **table.to_json()}
    if main:
        emit(args, payload, table_text(payload))
    return 0


def table_text(payload: dict) -> str:
    from cnnexplorer.core.faithfulness import BETTER, METRICS

    shown = [m for m in METRICS if any(m in row for row in payload["methods"].values())]
    rows = [("method", *(f"{m} ({'↓' if BETTER[m] == 'lower' else '↑'})" for m in shown))]
    for method, row in payload["methods"].items():
        rows.append((method, *(f"{row[m]:.3f}" if m in row else "—" for m in shown)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join([*lines, f"{payload['count']} images; ↓ lower is more faithful, ↑ higher"])
