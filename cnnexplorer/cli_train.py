"""The ``cnnexplorer train`` command: its flags, the ``TrainRequest`` they make, and the run's report.

The Training tab makes the same request from its form and runs the same ``training_job``.
With ``--nproc-per-node N`` (and ``--nnodes``/``--node-rank``/``--master-*`` for several machines) the command
starts itself under torchrun (``python -m torch.distributed.run … -m cnnexplorer train …``) without the
launcher's flags; run under torchrun (its environment names a world) it joins the process group and
trains its rank's share. Only rank 0 prints, writes the checkpoints and the CSV files.
"""

from __future__ import annotations

import json
import sys

from cnnexplorer.cli_shared import add_common, add_model_options, emit, file_options, load_model


def add_parser(sub) -> None:
    from cnnexplorer.core.training.data import DATASPEC_HELP
    from cnnexplorer.core.training.config import CHANNELS_LAST, OPTIMIZERS, PRECISIONS, SCHEDULES
    from cnnexplorer.core.training.heads import HEAD_HELP

    train = sub.add_parser("train", help="train or fine-tune a model, with a checkpoint every epoch")
    add_model_options(train, required=False)
    group = train.add_argument_group("training (defaults: the shapes recipe)")
    group.add_argument("--data", metavar="DATASPEC", help=DATASPEC_HELP)
    group.add_argument("--out", required=True, metavar="CKPT",
                       help="checkpoint written every epoch; the best epoch also goes to NAME.best.pt beside it")
    group.add_argument("--epochs", type=int, help="epochs (default: 4)")
    group.add_argument("--batch-size", type=int, help="batch size (default: 64)")
    group.add_argument("--lr", type=float, help="learning rate (default: 0.004)")
    group.add_argument("--optimizer", choices=OPTIMIZERS, help="default: adamw")
    group.add_argument("--momentum", type=float, help="SGD momentum (default: 0.9)")
    group.add_argument("--weight-decay", type=float, help="default: 0.05")
    group.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule (default: cosine)")
    group.add_argument("--precision", choices=PRECISIONS,
                       help="mixed precision: auto (default) is fp16 with loss scaling on CUDA, fp32 elsewhere")
    group.add_argument("--channels-last", choices=CHANNELS_LAST,
                       help="channels-last memory format: auto (default) is on for CUDA, off elsewhere")
    group.add_argument("--head", default="", metavar="SPEC",
                       help="replace the model's whole top (what follows its convolutional base) by a new head: "
                            + HEAD_HELP)
    group.add_argument("--binary", action="store_true",
                       help="one sigmoid output for two classes (binary cross-entropy), as a new head's output or in "
                            "place of the final Linear layer")
    group.add_argument("--freeze-base", action="store_true",
                       help="train only the head (the new one, or the model's top after its convolutional base)")
    group.add_argument("--unfreeze-top", type=int, default=0, metavar="N",
                       help="with --freeze-base: also train the base's top N blocks")
    group.add_argument("--unfreeze-from", default="", metavar="LAYER",
                       help="with --freeze-base: also train every base layer from LAYER on (e.g. features.24, VGG16's "
                            "block5_conv1)")
    group.add_argument("--base-lr", type=float, metavar="LR",
                       help="learning rate of the base's trained layers (default: --lr); the head keeps --lr")
    group.add_argument("--aux-weight", type=float, metavar="W",
                       help="weight of auxiliary classifiers' losses (GoogLeNet, Inception v3; default 0.3, 0: off)")
    group.add_argument("--scratch", action="store_true", help="re-initialise the weights (train from scratch)")
    group.add_argument("--augment", default="", metavar="LIST",
                       help="e.g. rotation=15,shift=0.1,shear=10,zoom=0.1,hflip,fill=nearest|constant|reflect|wrap")
    group.add_argument("--val-split", type=float, default=0.2, help="folder without val/: held-out fraction")
    group.add_argument("--download", action="store_true", help="download mnist/fashion-mnist/cifar10 into ROOT")
    group.add_argument("--resume", metavar="CKPT", help="continue a run from its checkpoint (only --epochs may change)")
    group.add_argument("--plot", metavar="CURVES.png", help="write the curves as PNG")
    group.add_argument("--csv", metavar="METRICS.csv", help="write the per-batch metrics as CSV")
    group.add_argument("--gradient-csv", metavar="GRADIENTS.csv",
                       help="record per-layer gradient norms and update/weight ratios and write them as CSV "
                            "(step, layer, grad_norm, update_ratio)")
    group.add_argument("--gradient-every", type=int, default=1, metavar="K",
                       help="with --gradient-csv or --progress-jsonl: record the gradient flow every K steps "
                            "(default: 1)")
    group.add_argument("--progress-jsonl", metavar="FILE",
                       help="append the run's progress as JSON lines (batches, epochs, gradient flow) for another "
                            "program to follow")
    spread = add_launcher_flags(train)
    spread.add_argument("--sync-bn", action="store_true",
                        help="synchronise batch-norm statistics across the processes (CUDA only)")
    add_common(train)


def add_launcher_flags(parser):
    """torchrun's flags and the process-group backend (train and evaluate share them); the group, to add more."""
    spread = parser.add_argument_group("distributed (torchrun; see docs/distributed.md)")
    for flag, kind, metavar, text in LAUNCHER_FLAGS:
        spread.add_argument(flag, type=kind, metavar=metavar, help=text)
    spread.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto",
                        help="process-group backend: auto (default) is nccl on CUDA, gloo on the CPU")
    return spread


LAUNCHER_FLAGS = (
    ("--nproc-per-node", int, "N", "run in N processes on this machine (one per GPU, or N CPU processes); train's "
                              "--batch-size is per process, so the global batch is N × it"),
    ("--nnodes", int, "M", "machines taking part (default: 1)"),
    ("--node-rank", int, "R", "this machine's number, 0 … nnodes-1 (default: 0)"),
    ("--master-addr", str, "HOST", "the address of machine 0 (default: 127.0.0.1)"),
    ("--master-port", int, "PORT", "a free port on machine 0, the same on every machine (default: a free local one)"),
)


def launch_settings(args):
    """torchrun's settings when the flags ask for more than one process, else None (train here)."""
    from cnnexplorer.core.distributed import Launch

    given = {name: getattr(args, name) for name in _launcher_names()}
    settings = Launch(**{k: v for k, v in given.items() if v is not None})
    return settings if settings.processes > 1 else None


def _launcher_names() -> list[str]:
    return [flag.strip("-").replace("-", "_") for flag, *_ in LAUNCHER_FLAGS]


def run_sharded(args, command: str, add, work) -> int:
    """A dataset command here (``work(args)``), under torchrun when ``--nproc-per-node`` asks for more
    processes (the same command again without the launcher's flags), or as one rank of a torchrun run
    (``work(args, main)``: every rank its part of the set, rank 0 reports)."""
    from cnnexplorer.core.distributed import launch, launched, local_device, process_group

    if not launched():
        settings = launch_settings(args)
        return work(args) if settings is None else launch(worker_argv(args, command, add), settings)
    args.device = local_device(args.device)
    with process_group(args.backend, args.device) as here:
        return work(args, here.main)


def worker_argv(args, command: str, add) -> list[str]:
    """The ``COMMAND …`` arguments of ``args`` (parsed by ``add``'s parser) without the launcher's flags: what
    every rank runs."""
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add(sub)
    skipped = set(_launcher_names()) | {"help"}
    argv = [command]
    for action in sub.choices[command]._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest in skipped or value is None or value == action.default:
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:
            argv.append(flag)
        else:
            argv += [flag, ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    return argv


def train_request(args, load=load_model):
    """The run the flags ask for; every setting is checked before the model is loaded (by ``load``) or the
    data opened."""
    import copy
    from dataclasses import replace
    from pathlib import Path

    from cnnexplorer.core.checks import check_number
    from cnnexplorer.core.errors import UserError
    from cnnexplorer.core.model_files import with_options
    from cnnexplorer.core.training.augment import parse_augmentation
    from cnnexplorer.core.training.config import TrainConfig
    from cnnexplorer.core.training.run import TrainRequest

    check_number("gradient-every", args.gradient_every, 1, whole=True)
    common = {"out": Path(args.out), "data": args.data, "val_split": args.val_split, "download": args.download,
              "gradient_every": args.gradient_every if args.gradient_csv or args.progress_jsonl else 0,
              "sync_bn": args.sync_bn}
    if args.resume:
        return TrainRequest(**common, resume=Path(args.resume), epochs=args.epochs, device=args.device,
                            file_options=file_options(args))
    if not args.model and args.arch:  # a new model of the architecture --arch names (FILE.py:CLASS, builtin:…)
        args = copy.copy(args)
        args.model = args.arch
    if not (args.model and args.data):
        raise UserError("train needs --model SPEC (or --arch SPEC for a new model of that architecture) and "
                        "--data DATASPEC (or --resume CKPT)")
    given = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer,
             "momentum": args.momentum, "weight_decay": args.weight_decay, "schedule": args.schedule,
             "precision": args.precision, "channels_last": args.channels_last, "aux_weight": args.aux_weight}
    config = TrainConfig(**{k: v for k, v in given.items() if v is not None}, freeze_base=args.freeze_base,
                         unfreeze_top=args.unfreeze_top, unfreeze_from=args.unfreeze_from.strip(),
                         base_lr=args.base_lr, head=args.head.strip(), binary=args.binary, seed=args.seed,
                         augment=parse_augmentation(args.augment))
    request = TrainRequest(**common, config=config, scratch=args.scratch, arch=args.arch)
    model = load(args)
    # --input-size/--mean/--std apply to a built-in or torchvision model too (the course's VGG16 at 150 px)
    return replace(request, model=replace(model, preprocessing=with_options(model.preprocessing, file_options(args))))


class ProgressLines:
    """Batch progress on stderr: the bar on a terminal; elsewhere (a log, a pipe) the first batch's line at once,
    then one line every ``every`` seconds, so a run shows it is alive long before its first epoch ends."""

    def __init__(self, bar, every: float = 2.0):
        self.bar, self.every, self.last = bar, every, None

    def __call__(self, item) -> None:
        import time

        from cnnexplorer.core.jobs import Progress

        text = f"epoch {item.epoch:.2f}  loss {item.loss:.3f}"
        if self.bar.enabled:
            self.bar(Progress(item.step, item.total_steps, text))
            return
        now = time.monotonic()
        if self.last is None or now - self.last >= self.every or item.step == item.total_steps:
            self.last = now
            print(f"step {item.step}/{item.total_steps}  {text}  {item.images_per_s:,.0f} images/s", file=sys.stderr,
                  flush=True)


def run(args) -> int:
    from cnnexplorer.core.distributed import launch, launched

    if launched():
        return _run_rank(args)
    settings = launch_settings(args)
    if settings is None:
        return _train(args)
    print(f"cnnexplorer: starting {settings.nproc_per_node} training processes with torchrun"
          + (f" on machine {settings.node_rank} of {settings.nnodes}" if settings.nnodes > 1 else ""),
          file=sys.stderr, flush=True)
    return launch(worker_argv(args, "train", add_parser), settings)


def _run_rank(args) -> int:
    """One rank of a torchrun run: join the process group on this rank's device and train its share (an error
    that stops the ranks is said once: ``cli._say_error``)."""
    from cnnexplorer.core.distributed import local_device, process_group

    args.device = local_device(args.device)
    with process_group(args.backend, args.device) as here:
        return _train(args, here)


def _train(args, here=None) -> int:
    import time

    from cnnexplorer.core.distributed import World
    from cnnexplorer.core.errors import UserError
    from cnnexplorer.core.jobs import TextProgressBar, drive
    from cnnexplorer.core.training.curves import write_curves_png
    from cnnexplorer.core.training.gradient_flow import GradientFlow, GradientLog
    from cnnexplorer.core.training.loop import BatchMetrics, EpochMetrics
    from cnnexplorer.core.training.progress_log import ProgressWriter, record_of
    from cnnexplorer.core.training.run import RunReady, training_job

    here = here or World()
    request = train_request(args)
    bar = TextProgressBar()
    batches = ProgressLines(bar)
    ready: RunReady | None = None
    reported: set[str] = set()
    flows = GradientLog()
    progress = ProgressWriter(args.progress_jsonl) if args.progress_jsonl and here.main else None

    def report_skipped() -> None:
        for path, reason in list(ready.data.skipped.items()) if ready and here.main else ():
            if path not in reported:
                reported.add(path)
                print(f"cnnexplorer: skipped unreadable image {path} ({reason})", file=sys.stderr)

    def show(item) -> None:
        nonlocal ready
        if isinstance(item, RunReady):
            ready = item
        if progress is not None:
            progress.write(record_of(item) or _ready_record(item, here))
        if isinstance(item, GradientFlow):
            flows.add(item)
        if not here.main:
            return
        if isinstance(item, RunReady):
            bar.close()
            start = "" if item.baseline is None else f" The model starts at val acc {item.baseline.val_acc:.4f}."
            print(f"cnnexplorer: {item.plan}{start}{_world_text(item.config.batch_size, here)}",
                  file=sys.stderr, flush=True)
        elif isinstance(item, BatchMetrics):
            batches(item)
        elif isinstance(item, EpochMetrics):
            bar.close()
            report_skipped()
            print(f"epoch {item.epoch}/{ready.config.epochs}  val loss {item.val_loss:.4f}  val acc "
                  f"{item.val_acc:.4f}  train loss {item.train_loss:.4f}  lr {item.lr:.2e}  {item.elapsed_s:.0f} s",
                  file=sys.stderr, flush=True)
        elif not isinstance(item, GradientFlow):
            bar(item)  # opening the model and the data

    start = time.monotonic()
    try:
        result = drive(training_job(request), show)
    except UserError as exc:
        if progress is not None:
            progress.write({"kind": "error", "message": str(exc)})
        raise
    finally:
        bar.close()
        report_skipped()
        if progress is not None:
            progress.close()
    if not here.main:
        return 2 if result.stopped else 0
    if args.plot:
        write_curves_png(args.plot, result.history)
    if args.csv:
        result.history.write_csv(args.csv)
    if args.gradient_csv:
        flows.write_csv(args.gradient_csv)
    spec = ready.data.spec
    payload = {"out": str(args.out), "checkpoint": str(result.checkpoint or ""), "epochs": result.epochs_done,
               "best_val_acc": result.best_val_acc, "final_val_acc": result.final_val_acc,
               "final_val_loss": result.final_val_loss, "best_val_loss": result.best_val_loss,
               "best_checkpoint": str(result.best_checkpoint or ""), "data": spec,
               "start_val_acc": ready.baseline.val_acc if ready.baseline else None,
               "skipped": sorted(result.skipped), "stopped": result.stopped, "processes": here.size,
               "global_batch": ready.config.batch_size * here.size, "seconds": round(time.monotonic() - start, 2)}
    if args.progress_jsonl:
        with open(args.progress_jsonl, "a", encoding="utf-8") as file:
            file.write(json.dumps({"kind": "done", **payload}) + "\n")
    acc = "—" if result.final_val_acc is None else f"{result.final_val_acc:.4f}"
    wrote = f"wrote {result.checkpoint}" if result.checkpoint else f"wrote nothing to {args.out}"
    emit(args, payload, f"trained {result.epochs_done} epoch{'' if result.epochs_done == 1 else 's'} on {spec}: val acc {acc}; {wrote}")
    if ready.baseline is not None and ready.baseline.falls_short(result.final_val_acc):
        print(f"cnnexplorer: warning: the final val acc {acc} is worse than the starting model's "
              f"{ready.baseline.val_acc:.4f} or no better than chance", file=sys.stderr)
    if result.stopped:
        print(f"cnnexplorer: error: {result.stopped}", file=sys.stderr)
        return 2
    return 0


def _world_text(batch_size: int, here) -> str:
    """The log's sentence on a distributed run's processes and global batch."""
    if not here.distributed:
        return ""
    import torch.distributed as dist

    return (f" {here.size} processes ({dist.get_backend()}): a global batch of {batch_size * here.size} = "
            f"{batch_size} per process × {here.size}.")


def _ready_record(item, here) -> dict | None:
    """The progress file's first line: the run's plan, length and processes."""
    from cnnexplorer.core.training.run import RunReady

    if not isinstance(item, RunReady):
        return None
    return {"kind": "ready", "plan": item.plan, "epochs": item.config.epochs, "processes": here.size,
            "global_batch": item.config.batch_size * here.size,
            "start_val_acc": item.baseline.val_acc if item.baseline else None}
