"""Train AlexNet with the paper's recipe (section 5) on an image folder, or on the embedded synthetic set.

    python examples/alexnet/train.py                               # small preset, synthetic set
    python examples/alexnet/train.py --data ~/imagenette2-320      # DIR/train/<class>/*, DIR/val/<class>/*
    python examples/alexnet/train.py --data ~/ILSVRC2012 --preset paper --device cuda
    python examples/alexnet/train.py --resume runs/small-20260101-120000 --epochs 30
    mpiexec -n 4 python -m mpi4py examples/alexnet/train.py   # data-parallel: --batch-size is the global batch
    mpiexec -n 2 python -m mpi4py examples/alexnet/train.py --model-parallel 2   # the paper's two towers

Recipe (section 5): SGD, momentum 0.9, weight decay 0.0005, the learning rate divided by 10 when the
validation error stops improving (at most 3 times). Data (sections 2, 4.1): shorter side rescaled to S,
central S x S crop, mean image subtracted, random s x s crops and horizontal flips, PCA colour noise;
validation on the centre crop (evaluate.py adds the ten crops). The paper preset uses S = 256, s = 224
and batch 128; the small preset S = 73, s = 64 and batch 64, He initialisation and inputs scaled to unit
variance (the paper's N(0, 0.01^2) init is tuned for raw 0..255 pixels and a much longer schedule).

Every epoch writes, in --out: metrics.json, last.npz (everything needed to resume exactly, written
atomically) and best.npz (the epoch with the best validation top-1); curves.png is drawn after the first
and the last epoch and at most every CURVES_EVERY seconds between (a tiny folder's epochs take a
fraction of a second, and drawing them took a third of the run).

Under mpiexec every rank trains a replica on its slice of each global batch (minigrad.distributed):
the same training as one process, up to the order of floating-point sums. Rank 0 alone prints and
writes the outputs; a checkpoint resumes on any number of ranks. With --model-parallel 2, ranks 2t and
2t + 1 hold the two towers of replica t (section 3.2, minigrad/distributed/towers.py), each on the
replica's whole slice; the checkpoints keep the one-device layout, so a run resumes with or without towers.
"""
import argparse
import math
import os
import sys
import time
import warnings

import numpy as np

import minigrad as mg
from minigrad import checkpoint, console, data, distributed, finetune, models, recipe, scoring
from minigrad.distributed import towers
from minigrad.reports import plot_curves, write_metrics

# What a preset trains with when an option is not given. The paper's numbers are section 5's; how long
# to train and when to evaluate is minigrad/recipe.py's plan (it adapts the small preset to the folder's size).
RECIPES = {
    "paper": {"batch_size": 128, "lr": 0.01, "scale": "raw"},
    "small": {"batch_size": 64, "lr": 0.01, "scale": "unit"},
}
NETWORKS = {"alexnet": "AlexNet", "resnet": "residual network", "inception": "inception network",
            "onnx": "network of the --init ONNX file"}
MAX_LR_REDUCTIONS = 3               # "divided by 10 three times prior to termination" (section 5)
CURVES_EVERY = 10.0                 # seconds between two drawings of curves.png (one takes ~0.15 s)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="image folder: DIR/train/<class>/* and DIR/val/<class>/* (without "
                        "val/, 10%% of train is held out); default: the synthetic set, generated on first use into "
                        "$MINIGRAD_DATA/synthetic or ~/.cache/minigrad/synthetic (the path is printed)")
    parser.add_argument("--preset", choices=sorted(models.PRESETS), help="network size (default: small)")
    parser.add_argument("--arch", choices=models.ARCHITECTURES, help="the network: AlexNet (default), or one of "
                        "its successors at the small size, written as graphs that fork and join: a residual network "
                        "or an inception network (minigrad/models/); the same recipe trains each. onnx: the network "
                        "of --init FILE.onnx itself, any classifier minigrad.onnx loads, its classifier new for the "
                        "folder's classes (minigrad/models/imported.py; a resumed run reads FILE again, and refuses "
                        "it if it has changed)")
    parser.add_argument("--epochs", type=int, help="total epochs, exactly (default: recipe.py's plan: paper "
                        "90; small a budget of optimisation steps, printed at the start)")
    parser.add_argument("--no-flip", action="store_true", help="no random horizontal mirroring: use it when "
                        "a mirrored image is another class or no image of the data (digits, letters, text)")
    parser.add_argument("--batch-size", type=int, help="default: 128 (paper), 64 (small)")
    parser.add_argument("--lr", type=float, help="initial learning rate (default 0.01)")
    parser.add_argument("--seed", type=int, help="seeds the weights, dropout, shuffling and augmentation (default 0)")
    parser.add_argument("--device", choices=mg.backend.DEVICES, default="cpu")
    parser.add_argument("--dtype", choices=("float32", "float64"), help="of the weights and batches (default "
                        "float32); float64 is slower, for comparing a run on N ranks with the one-process run "
                        "number for number (they agree to rounding, about 1e-15; in float32 the rounding grows "
                        "over the steps)")
    parser.add_argument("--workers", type=int, default=2, help="background threads preparing batches (default 2)")
    parser.add_argument("--out", help="output folder (default: runs/<preset>-<date>-<time>)")
    parser.add_argument("--resume", metavar="RUN", help="continue exactly the run saved in RUN/last.npz (RUN: its "
                        "folder, or the checkpoint file itself)")
    parser.add_argument("--init", metavar="FILE", help="fine-tune: start from the weights of FILE (.onnx, e.g. the "
                        "ONNX Model Zoo's bvlcalexnet-12.onnx, or a checkpoint .npz); the classifier (fc8) is new "
                        "(finetune.py); with --arch onnx, FILE is the network too")
    parser.add_argument("--freeze", metavar="LAYERS", help="with --init: comma-separated layers not to train")
    parser.add_argument("--init-lr-mult", type=float, default=1.0, help="with --init: learning-rate multiplier "
                        "of the loaded layers (Caffe's lr_mult, e.g. 0.1; default 1)")
    parser.add_argument("--diagnose", action="store_true", help="print mg.diagnose's report on one batch before "
                        "training, and again whenever the training loss stalls near ln(classes)")
    parser.add_argument("--cache-gb", type=float, default=4.0, help="decode the whole dataset into memory "
                        "when it takes at most this much (default 4 GB); otherwise decode batch by batch")
    parser.add_argument("--synthetic-per-class", type=int, default=600, help="training images per class of "
                        "the generated synthetic set (validation: a fifth of it); default 600")
    parser.add_argument("--model-parallel", type=int, choices=(1, 2), default=1, help="2: the paper's two towers "
                        "(section 3.2), one per rank (minigrad.distributed.towers); 4 ranks are 2 towers x 2 data-parallel "
                        "replicas")
    parser.add_argument("--rank-timeout", type=float, default=distributed.TIMEOUT, metavar="SECONDS",
                        help="with several ranks: a rank that waits this long for the others in one collective "
                        "ends the job (one of them hangs); it must exceed the longest legitimate wait: rank 0 "
                        "generating the synthetic set, writing checkpoints and curves; 0: wait for ever (default "
                        "%(default)g)")
    args = parser.parse_args(argv)
    if args.rank_timeout < 0:
        raise SystemExit(f"train.py: --rank-timeout must be >= 0 seconds, got {args.rank_timeout:g}")
    for name in ("epochs", "batch_size", "workers", "synthetic_per_class"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "workers" else 1):
            raise SystemExit(f"train.py: --{name.replace('_', '-')} must be a positive int, got {value}")
    if args.lr is not None and not args.lr > 0:
        raise SystemExit(f"train.py: --lr must be positive, got {args.lr}")
    if args.arch == "onnx" and not (args.init or "").endswith(".onnx") and not args.resume:
        raise SystemExit("train.py: --arch onnx fine-tunes the network of an ONNX file: give it with --init FILE.onnx")
    return args


def one_device_layout(model, optimizer, tower_comm, config, classes):
    """(net, SGD) to checkpoint: `model` itself, or its towers' halves gathered into a new one-device net
    on the CPU, which resumes on any layout (every tower of `tower_comm` must call it)."""
    if tower_comm.size == 1:
        return model, optimizer
    net = models.from_config(config, len(classes))
    return net, towers.gather_whole(model, optimizer, net, tower_comm)


# --- one epoch --------------------------------------------------------------------------------------
class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


def train_epoch(model, loss_fn, optimizer, loader, epoch, epochs, device, comm=None, evaluate_after=(),
                on_evaluate=None):
    """One pass over the training set; returns (mean loss, top-1 accuracy) over its batches.
    With several ranks (`comm`), `model` is a DataParallel replica and `loader` serves this rank's slices.
    on_evaluate(step) is called after each step (0-based) in `evaluate_after` (the plan's mid-epoch ones)."""
    comm = comm or distributed.LocalCommunicator()
    model.train()
    total_loss = total_correct = seen = 0
    start = time.time()
    bar = console.progress(loader.epoch(epoch), len(loader), f"epoch {epoch}/{epochs}")
    for step, (x, y) in enumerate(bar):
        if len(y) == 0:                                   # every file of the batch was unreadable
            if comm.size > 1:                             # (a rank that skipped a step would hang the others)
                raise ValueError(f"train.py: rank {comm.rank} got no readable image in batch {step + 1}")
            continue
        logits = model.forward(mg.backend.to_device(x, device))
        loss = loss_fn.forward(logits, mg.backend.to_device(y, device))
        correct = int((mg.backend.to_numpy(logits.argmax(axis=1)) == y).sum())
        # The global batch's loss, images and hits; each rank's gradient is its share of the mean.
        loss_sum, correct, count = comm.allreduce(np.array([loss * len(y), correct, len(y)], np.float64))
        loss = loss_sum / count
        if not math.isfinite(loss):
            raise Diverged(f"the training loss became {loss} at epoch {epoch}, batch {step + 1}")
        optimizer.zero_grad()
        model.backward(loss_fn.backward(len(y) / count))
        optimizer.step()
        total_loss += loss * count
        total_correct += int(correct)
        seen += int(count)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{total_correct / seen:.1%}",
                        img_s=f"{seen / (time.time() - start):.0f}", refresh=False)
        if step in evaluate_after:
            on_evaluate(step)
            model.train()
    bar.close()
    if not seen:
        raise ValueError("train.py: the training set gave no batch (fewer images than --batch-size?)")
    return total_loss / seen, total_correct / seen


def run_diagnosis(model, loader, epoch, device, why):
    """Print mg.diagnose's report on the first training batch of `epoch` (diagnose changes no state of
    the model, so the run continues exactly as without --diagnose)."""
    from minigrad.diagnostics import diagnose

    x, y = next(iter(loader.epoch(epoch)))
    print(f"--diagnose ({why}):")
    print(diagnose(model, mg.backend.to_device(x, device), mg.backend.to_device(y, device)))


# --- main -------------------------------------------------------------------------------------------
def make_config(args):
    preset = args.preset or "small"
    defaults = RECIPES[preset]
    architecture = models.PRESETS[preset]
    imported = models.imported.describe(args.init) if args.arch == "onnx" else None
    image_size = (imported and imported["image_size"]) or architecture.image_size      # (the size the file fixes)
    config = {"preset": preset, "arch": args.arch or "alexnet", "image_size": image_size,
              "resize": data.resize_for(image_size), "seed": 0 if args.seed is None else args.seed,
              "batch_size": args.batch_size or defaults["batch_size"], "lr": args.lr or defaults["lr"],
              "epochs": args.epochs, "scale": defaults["scale"], "flip": not args.no_flip,
              "momentum": 0.9, "weight_decay": 0.0005, "dtype": args.dtype or "float32"}
    if args.data is None:
        per_class = args.synthetic_per_class
        config["synthetic_per_class"] = per_class
        config["data"] = data.synthetic.default_root(per_class)        # absolute: --resume finds it from anywhere
    else:
        config["data"] = os.path.abspath(os.path.expanduser(args.data))
    if config["arch"] == "alexnet":       # its sizes, recorded: a checkpoint outlives a change of the presets
        config["architecture"] = architecture.to_dict()
    if imported:                          # the file, recorded: a resumed run reads the same network from it
        config["onnx"] = imported
    return config


def ensure_synthetic(config):
    """Generate the synthetic set of a run that trains on it, unless it is already on disk. The folder
    comes from the run's config, a checkpoint's on --resume: one that minigrad did not generate is
    refused, never overwritten (data/synthetic.py)."""
    per_class = config.get("synthetic_per_class")
    if per_class:
        start = time.time()
        try:
            data.synthetic.generate(config["data"], train_per_class=per_class, val_per_class=max(1, per_class // 5))
        except ValueError as error:
            raise SystemExit(f"train.py: {error}") from None
        print(f"synthetic set ready in {config['data']} ({time.time() - start:.1f}s)")


def run_config(args):
    """(config, output folder, the checkpoint resumed or None) of the run the options ask for: a new
    run, or the one saved in --resume's checkpoint (which keeps the values it started with)."""
    if not args.resume:
        try:
            config = {**make_config(args), **finetune.settings(args.init, args.freeze, args.init_lr_mult)}
        except ValueError as error:       # an --init FILE that no network can be read from: its message says why
            raise SystemExit(f"train.py: {error}") from None
        network = config["preset"] if config["arch"] == "alexnet" else f"{config['arch']}-{config['preset']}"
        out = args.out or os.path.join("runs", f"{network}-{time.strftime('%Y%m%d-%H%M%S')}")
        if os.path.exists(os.path.join(out, "last.npz")):
            raise SystemExit(f"train.py: {out} already holds a run (last.npz); continue it with --resume {out} "
                             f"or choose another --out")
        return config, out, None
    try:
        saved = checkpoint.load(args.resume)
    except ValueError as error:           # a damaged, truncated or foreign file: its message says what is wrong
        raise SystemExit(f"train.py: --resume: {error}") from None
    config = {"dtype": "float32", **saved.config}          # (checkpoints from before --dtype)
    ignored = [f"--{name.replace('_', '-')}" for name in ("data", "preset", "arch", "batch_size", "lr", "seed", "dtype")
               if getattr(args, name) is not None]
    if ignored:
        print(f"resuming: {', '.join(ignored)} ignored, the run keeps the values it started with")
    if args.epochs and "plan" in config:
        config["plan"] = recipe.extended(recipe.Plan(**config["plan"]), args.epochs).to_dict()
    config["epochs"] = args.epochs or config["epochs"]
    return config, args.out or os.path.dirname(saved.path), saved


def open_network(args, config, train, saved, comm):
    """(network on the device, normalisation, history, best epoch): the checkpoint's, or a new network
    for the plan that the training folder's size gives (recipe.py), fine-tuned from --init."""
    if saved:
        if train.classes != saved.classes:
            raise SystemExit(f"train.py: the classes in {config['data']} are not those of the checkpoint")
        try:
            model, normalisation = saved.model(args.device, config["dtype"]), saved.normalisation()
        except ValueError as error:
            raise SystemExit(f"train.py: --resume: {error}") from None
        return model, normalisation, saved.history, saved.record["best"]
    smaller = recipe.batch_size(config["batch_size"], len(train))
    if args.batch_size is None and smaller != config["batch_size"]:
        print(f"batch {smaller}: {len(train)} training images are fewer than 4 batches of {config['batch_size']}")
        config["batch_size"] = smaller
        distributed.check_global_batch(comm, smaller)
    plan = recipe.plan(config["preset"], len(train), config["batch_size"], config["epochs"])
    config.update(epochs=plan.epochs, plan=plan.to_dict())
    print(plan.describe())
    normalisation = data.Normalisation.fit(train, config["seed"], config["scale"])
    model = models.from_config(config, len(train.classes))
    if config["init"]:
        config["init_loaded"] = finetune.start_from(model, config["init"])
    return model.to(args.device), normalisation, [], {"epoch": 0, "val_top1": -1.0}


def main(argv=None):
    # MPI first, before anything that can fail: a rank that exits before MPI is initialised cannot
    # abort the job, and the others would wait for it in MPI_Init forever (minigrad.distributed).
    world = distributed.world()
    console.one_line_warnings()
    if world.rank:                        # rank 0 alone prints and warns (every rank reads the same files;
        sys.stdout = open(os.devnull, "w")     # errors still reach stderr from any rank)
        warnings.simplefilter("ignore")
    args = parse_args(argv)
    distributed.set_timeout(args.rank_timeout or None)
    config, out, saved = run_config(args)
    # Every rank must run the same training: an option given to one rank only (an MPMD launch, a node
    # with another copy of the checkpoint) would make the ranks train different replicas silently, or
    # run different numbers of steps and hang. The data is compared by its files, below.
    distributed.check_agreement(world, {**{key: value for key, value in config.items() if key != "data"},
                                        "device": args.device, "model_parallel": args.model_parallel,
                                        "diagnose": args.diagnose, "resumed": saved and saved.fingerprint()},
                                "the run's configuration")
    # comm: the data-parallel replicas (the whole job without --model-parallel); tower_comm: this
    # rank's partner towers, which see the same batch.
    if args.model_parallel > 1 and config.get("arch", "alexnet") != "alexnet":
        raise SystemExit(f"train.py: --model-parallel splits AlexNet's towers (section 3.2); --arch "
                         f"{config['arch']} has none")
    comm, tower_comm = towers.layout(world, args.model_parallel)
    distributed.check_global_batch(comm, config["batch_size"])
    os.makedirs(out, exist_ok=True)
    mg.backend.check_device(args.device)
    if args.device == "cuda" and world.size > 1:          # towers too: one GPU per rank
        distributed.select_gpu(world)
    # The application, not the library, decides the process's malloc policy (minigrad/ops/cpu_runtime.py).
    print("malloc: freed memory kept for reuse (mg.keep_freed_memory())" if mg.keep_freed_memory()
          else "malloc: left as it is (mg.keep_freed_memory() needs glibc)")
    if world.rank == 0:
        ensure_synthetic(config)
    world.barrier()

    try:
        train, val = data.open_datasets(config, args.cache_gb * 2**30, args.workers)
    except ValueError as error:           # a folder that cannot train: the message names the folder and why
        raise SystemExit(f"train.py: {error}") from None
    skipped = sorted(set(train.skipped) | set(val.skipped))
    if skipped:
        print(console.skipped_summary(skipped, config["data"]))
    if world.size > 1:                    # (a stat per file: not for one process)
        files = [path for split in (train, val) for path, _ in split.samples]
        distributed.check_agreement(world, f"{len(files)} files, hash {distributed.file_list_hash(files)}",
                                    f"the list of readable image files (names and sizes) under --data {config['data']}")
    model, normalisation, history, best = open_network(args, config, train, saved, comm)
    optimizer = mg.SGD(finetune.parameter_groups(model, config), lr=config["lr"], momentum=config["momentum"],
                       weight_decay=config["weight_decay"])
    # Section 5: divide the rate by 10 when the validation error stops improving, three times at most.
    # The plan counts patience in evaluations, several per epoch when epochs are long (recipe.py).
    plan = recipe.Plan(**config["plan"]) if "plan" in config else recipe.Plan(   # (a run from before the plans)
        config["epochs"], len(train) // config["batch_size"], 1, config["patience"], "recorded without a plan")
    scheduler = mg.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=plan.patience,
                                     max_reductions=MAX_LR_REDUCTIONS)
    if saved:
        try:
            saved.restore(model, optimizer, scheduler)
        except ValueError as error:
            raise SystemExit(f"train.py: --resume: {error}") from None
    parameters = sum(p.data.size for p in model.parameters())
    if tower_comm.size > 1:               # from here on this rank holds its tower only (section 3.2)
        model, optimizer = towers.split(model, optimizer, tower_comm)
        scheduler.optimizer = optimizer
    if comm.size > 1:                     # a data-parallel replica, with rank 0's weights and velocities
        distributed.DataParallel(model, comm, optimizer)
    train_loader, val_loader = data.make_loaders(train, val, config, normalisation, args.workers, comm)
    loss_fn, chance_loss = mg.SoftmaxCrossEntropy(), math.log(len(train.classes))
    start_epoch = history[-1]["epoch"] if history else 0
    mine = sum(p.data.size for p in model.parameters())
    print(f"{config['preset']} {NETWORKS[config.get('arch', 'alexnet')]}, {parameters:,} parameters"
          f"{f' in {tower_comm.size} towers (model-parallel: {mine:,} on rank 0)' if tower_comm.size > 1 else ''}; "
          f"{len(train)} training and {len(val)} validation images in {len(train.classes)} classes; "
          f"epochs {start_epoch + 1}..{config['epochs']}, batch {config['batch_size']}"
          f"{f' over {comm.size} replicas' if comm.size > 1 else ''}, lr {optimizer.lr:g}; "
          f"writing to {out}")
    if args.diagnose:
        run_diagnosis(model, train_loader, start_epoch + 1, args.device, "before training")

    def after_evaluation(val_top1, step):
        """Section 5's plateau rule on the validation error, and the plan's last call (recipe.py), after
        `step` steps of the run; says why when the rate falls."""
        lr = optimizer.lr
        if scheduler.step(1 - val_top1):
            why = f"no better val top-1 than {1 - scheduler.best:.1%} in {plan.patience} evaluations"
        elif plan.last_call is not None and step >= plan.last_call and not scheduler.reductions and scheduler.reduce():
            why = f"the plan's last call ({step} of {plan.steps} steps done, the rate never lowered)"
        else:
            return
        console.write(f"learning rate {lr:g} -> {optimizer.lr:g}: {why}")

    def evaluate_mid_epoch(step):          # (no bar of its own: it would nest in the epoch's)
        _, top1, _ = scoring.evaluate(model, val_loader, args.device, comm=comm, bar=False)
        console.write(f"  mid-epoch evaluation after step {step}: val top-1 {top1:.1%}")
        after_evaluation(top1, step)

    run_start, first_epoch, drawn = time.time(), start_epoch + 1, 0.0
    for epoch in range(start_epoch + 1, config["epochs"] + 1):
        epoch_start, lr = time.time(), optimizer.lr
        try:
            done = (epoch - 1) * plan.steps_per_epoch          # steps of the run before this epoch's
            train_loss, train_top1 = train_epoch(model, loss_fn, optimizer, train_loader, epoch, config["epochs"],
                                                 args.device, comm, plan.evaluation_steps()[:-1],
                                                 lambda step: evaluate_mid_epoch(done + step + 1))
        except Diverged as error:
            kept = f"{out}/last.npz keeps epoch {start_epoch}" if history else "no checkpoint was written"
            print(f"train.py: stopping: {error}. {kept}. Try a lower --lr (this epoch used {lr:g}).")
            return 1
        val_loss, val_top1, val_top5 = scoring.evaluate(model, val_loader, args.device, comm=comm)
        after_evaluation(val_top1, epoch * plan.steps_per_epoch)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_top1": val_top1,
                        "val_top5": val_top5, "lr": lr, "seconds": time.time() - epoch_start,
                        "train_top1": train_top1})
        improved = val_top1 > best["val_top1"]
        if improved:
            best = {"epoch": epoch, "val_top1": val_top1, "val_top5": val_top5}
        record = {"config": config, "classes": train.classes, "history": history, "best": best,
                  "skipped": sorted(set(train.skipped) | set(val.skipped))}
        if comm.rank == 0:                # the replicas are identical: the first one's rank 0 writes
            whole, state = one_device_layout(model, optimizer, tower_comm, config, train.classes)
            if world.rank == 0:
                checkpoint.save(os.path.join(out, "last.npz"), whole, state, scheduler, normalisation, record)
                if improved:
                    checkpoint.save(os.path.join(out, "best.npz"), whole, state, scheduler, normalisation, record)
                write_metrics(out, history, record)
                if epoch in (first_epoch, config["epochs"]) or time.time() - drawn > CURVES_EVERY:
                    plot_curves(out, history)
                    drawn = time.time()
        world.barrier()
        start_epoch = epoch
        print(f"epoch {epoch}: train loss {train_loss:.3f} top-1 {train_top1:.1%} | val loss {val_loss:.3f} "
              f"top-1 {val_top1:.1%} top-5 {val_top5:.1%} | lr {lr:g} | {history[-1]['seconds']:.0f}s")
        if args.diagnose and epoch < config["epochs"] and abs(train_loss - chance_loss) < 0.05 * chance_loss:
            run_diagnosis(model, train_loader, epoch + 1, args.device,
                          f"the training loss {train_loss:.3f} is within 5% of ln({len(train.classes)}) = {chance_loss:.3f}")
    if history:
        last = history[-1]
        print(f"done in {time.time() - run_start:.0f}s: val top-1 {last['val_top1']:.1%}, top-5 {last['val_top5']:.1%} "
              f"after {last['epoch']} epochs; best top-1 {best['val_top1']:.1%} at epoch {best['epoch']}; "
              f"checkpoints, metrics.json and curves.png in {out}")
        print(f"{len(record['skipped'])} file(s) skipped (each warned about above; listed in metrics.json)")
    return 0


if __name__ == "__main__":
    try:
        status = main()
    except SystemExit as stop:            # a usage error, a refused run: with several ranks, it ends them all
        status = stop.code
    distributed.exit_job(status)
