"""The ``cnnexplorer index`` command: one pass over a probe set that the dataset pictures read.

``--nproc-per-node N`` shares the pass among N processes under torchrun; the index is a single process's.
The first Ctrl-C or SIGTERM stops the pass at the end of a batch, which saves its progress: the same command
resumes it.
"""

from __future__ import annotations

import sys

from cnnexplorer.cli_shared import add_common, add_model_options, emit, load_model, stop_on_signals
from cnnexplorer.cli_train import add_launcher_flags, run_sharded
from cnnexplorer.pictures.flags import bounded_int


def add_parser(sub) -> None:
    index = sub.add_parser("index", help="index a dataset: each unit's top images, distributions, features")
    add_model_options(index)
    index.add_argument("--data", required=True, metavar="DATASPEC", help="a folder of images or a data spec")
    index.add_argument("--layers", metavar="L1,L2|all",
                       help="layers to index (default: every Conv2d and Linear layer; all: every layer with maps)")
    index.add_argument("--top-k", type=bounded_int(1, 1000), default=9, help="images kept per unit (default: 9)")
    index.add_argument("--batch-size", type=bounded_int(1, 65536), default=64, help="images per batch (default: 64)")
    index.add_argument("--cache", metavar="DIR", help="where indexes are kept (default: the user's cache folder, "
                       "or $CNNEXPLORER_CACHE)")
    index.add_argument("--download", action="store_true", help="download a torchvision dataset if it is missing")
    add_launcher_flags(index)
    add_common(index)


def run(args) -> int:
    """Index here, or with ``--nproc-per-node N`` under torchrun (each rank its part; rank 0 writes and reports)."""
    return run_sharded(args, "index", add_parser, _index)


def _index(args, main: bool = True) -> int:
    import time

    from cnnexplorer.core.dataset.index import CacheHit, IndexNote, all_layers, index_cache_file, index_job
    from cnnexplorer.core.dataset.probe import open_probe_job
    from cnnexplorer.core.jobs import TextProgressBar, drive

    started = time.monotonic()
    handle = load_model(args)
    bar = TextProgressBar()
    reused = False

    def on_item(item) -> None:
        nonlocal reused
        if not main:  # rank 0 speaks for the run
            return
        if isinstance(item, (IndexNote, CacheHit)):
            bar.close()
            reused = reused or isinstance(item, CacheHit)
            text = f"reusing the index in {item.path}" if isinstance(item, CacheHit) else item.text
            print(f"cnnexplorer: {text}", file=sys.stderr)
        else:
            bar(item)

    with stop_on_signals(say=main) as stop:  # Ctrl-C or SIGTERM: the pass stops at a batch's end, saved to resume
        try:
            probe = drive(open_probe_job(args.data, args.download), on_item, stop)
            layers = _layers(args.layers, handle, all_layers)
            index = drive(index_job(handle, probe, layers, args.top_k, args.batch_size, cache_dir=args.cache), on_item,
                          stop)
        finally:
            bar.close()
    if not main:
        return 0
    for path, why in index.skipped.items():
        print(f"cnnexplorer: skipped {path}: {why}", file=sys.stderr)
    path = index_cache_file(index, args.cache)
    payload = {"count": index.count, "layers": {name: layer.channels for name, layer in index.layers.items()},
               "cache": str(path), "seconds": round(time.monotonic() - started, 3), "skipped": index.skipped,
               "reused": reused}
    text = (f"indexed {index.count:,} image{'' if index.count == 1 else 's'} of {index.data_spec} ({len(index.layers)} layers"
            f"{', reused' if reused else ''}; {len(index.skipped)} skipped) into {path}")
    emit(args, payload, text)
    return 0


def _layers(text: str | None, handle, all_layers) -> list[str] | None:
    """``--layers``: None for the default, every layer for ``all``, else the comma-separated names."""
    from cnnexplorer.core.errors import UserError

    if text is None:
        return None
    if text.strip() == "all":
        return all_layers(handle)
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UserError("--layers is empty; give layer names separated by commas, or all")
    return names
