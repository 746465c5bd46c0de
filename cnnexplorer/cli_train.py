"""The ``cnnexplorer train`` command: its flags, the run's set-up from them, and the run itself."""

from __future__ import annotations

import sys


def add_train_parser(sub, add_model_options, add_common) -> None:
    from cnnexplorer.core.training.data import DATASPEC_HELP
    from cnnexplorer.core.training.config import CHANNELS_LAST, OPTIMIZERS, PRECISIONS, SCHEDULES

    train = sub.add_parser("train", help="train or fine-tune a model, with a checkpoint every epoch")
    add_model_options(train, required=False)
    group = train.add_argument_group("training (defaults: the shapes recipe)")
    group.add_argument("--data", metavar="DATASPEC", help=DATASPEC_HELP)
    group.add_argument("--out", required=True, metavar="CKPT", help="checkpoint written every epoch (best: CKPT.best)")
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
    group.add_argument("--freeze-base", action="store_true", help="train only the classifier head")
    group.add_argument("--unfreeze-top", type=int, default=0, metavar="N",
                       help="with --freeze-base: also train the top N blocks")
    group.add_argument("--scratch", action="store_true", help="re-initialise the weights (train from scratch)")
    group.add_argument("--augment", default="", metavar="LIST",
                       help="e.g. rotation=15,shift=0.1,shear=10,zoom=0.1,hflip,fill=nearest|constant|reflect|wrap")
    group.add_argument("--val-split", type=float, default=0.2, help="folder without val/: held-out fraction")
    group.add_argument("--download", action="store_true", help="download mnist/fashion-mnist/cifar10 into ROOT")
    group.add_argument("--resume", metavar="CKPT", help="continue a run from its checkpoint (only --epochs may change)")
    group.add_argument("--plot", metavar="CURVES.png", help="write the curves as PNG")
    group.add_argument("--csv", metavar="METRICS.csv", help="write the per-batch metrics as CSV")
    add_common(train)


def _train_setup(args, load):
    """The model handle, data, settings, checkpoint arch and resume state a ``train`` run starts from."""
    from dataclasses import replace

    from cnnexplorer.core.errors import UserError
    from cnnexplorer.core.training.augment import parse_augmentation
    from cnnexplorer.core.training.data import check_val_fraction, open_data
    from cnnexplorer.core.training.config import TrainConfig
    from cnnexplorer.core.training.state import read_resume
    from cnnexplorer.core.training.transfer import architecture_spec, prepare_model

    check_val_fraction(args.val_split)
    if args.resume:
        training, config = read_resume(args.resume)
        config = replace(config, epochs=config.epochs if args.epochs is None else args.epochs)
        args.model = args.resume
        handle = load(args)
        data = open_data(args.data or training["data"], handle.input_size, val_fraction=args.val_split,
                         seed=config.seed, download=args.download)
        return handle, data, config, architecture_spec(handle), training
    if not (args.model and args.data):
        raise UserError("train needs --model SPEC and --data DATASPEC (or --resume CKPT)")
    given = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer,
             "momentum": args.momentum, "weight_decay": args.weight_decay, "schedule": args.schedule,
             "precision": args.precision, "channels_last": args.channels_last}
    config = TrainConfig(**{k: v for k, v in given.items() if v is not None}, freeze_base=args.freeze_base,
                         unfreeze_top=args.unfreeze_top, seed=args.seed, augment=parse_augmentation(args.augment))
    if args.unfreeze_top and not args.freeze_base:
        raise UserError("--unfreeze-top N needs --freeze-base (without it every layer is trained)")
    handle = load(args)
    arch = architecture_spec(handle, args.arch)
    data = open_data(args.data, handle.input_size, val_fraction=args.val_split, seed=args.seed, download=args.download)
    return prepare_model(handle, data.class_names, scratch=args.scratch, seed=args.seed), data, config, arch, None


def cmd_train(args, load, emit) -> int:
    import time

    from cnnexplorer.core.jobs import Progress, TextProgressBar, drive
    from cnnexplorer.core.training.curves import write_curves_png
    from cnnexplorer.core.training.loop import BatchMetrics, EpochMetrics, train

    handle, data, config, arch, resume = _train_setup(args, load)
    bar = TextProgressBar()
    reported: set[str] = set()

    def report_skipped() -> None:
        for path, reason in list(data.skipped.items()):
            if path not in reported:
                reported.add(path)
                print(f"cnnexplorer: skipped unreadable image {path} ({reason})", file=sys.stderr)

    def show(item) -> None:
        if isinstance(item, BatchMetrics):
            bar(Progress(item.step, item.total_steps, f"epoch {item.epoch:.2f}  loss {item.loss:.3f}"))
        elif isinstance(item, EpochMetrics):
            bar.close()
            report_skipped()
            print(f"epoch {item.epoch}/{config.epochs}  val loss {item.val_loss:.4f}  val acc {item.val_acc:.4f}  "
                  f"train loss {item.train_loss:.4f}  lr {item.lr:.2e}  {item.elapsed_s:.0f} s", file=sys.stderr)

    start = time.monotonic()
    try:
        result = drive(train(handle, data, config, arch=arch, out=args.out, resume=resume), show)
    finally:
        bar.close()
        report_skipped()
    if args.plot:
        write_curves_png(args.plot, result.history)
    if args.csv:
        result.history.write_csv(args.csv)
    payload = {"out": str(args.out), "checkpoint": str(result.checkpoint or ""), "epochs": result.epochs_done,
               "best_val_acc": result.best_val_acc, "final_val_acc": result.final_val_acc,
               "final_val_loss": result.final_val_loss, "best_val_loss": result.best_val_loss,
               "best_checkpoint": str(result.best_checkpoint or ""), "data": data.spec,
               "skipped": sorted(data.skipped), "stopped": result.stopped,
               "seconds": round(time.monotonic() - start, 2)}
    acc = "—" if result.final_val_acc is None else f"{result.final_val_acc:.4f}"
    wrote = f"wrote {result.checkpoint}" if result.checkpoint else f"wrote nothing to {args.out}"
    emit(args, payload, f"trained {result.epochs_done} epochs on {data.spec}: val acc {acc}; {wrote}")
    if result.stopped:
        print(f"cnnexplorer: error: {result.stopped}", file=sys.stderr)
        return 2
    return 0
