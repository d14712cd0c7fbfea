"""What a training run writes beside its checkpoints: metrics.json (every epoch's figures) and
curves.png (loss and accuracy by epoch), each written atomically."""
import json
import os

from .checkpoint import atomic_write

METRICS = ("epoch", "train_loss", "val_loss", "val_top1", "val_top5", "lr", "seconds")


def write_metrics(out, history, record):
    """out/metrics.json: {"epochs": [{METRICS...}, ...]} with accuracies as fractions, and the run's
    config, classes, best epoch, training top-1 per epoch and skipped files."""
    text = json.dumps({"epochs": [{key: row[key] for key in METRICS} for row in history],
                       "train_top1": [row["train_top1"] for row in history], "config": record["config"],
                       "classes": record["classes"], "best": record["best"], "skipped": len(record["skipped"]),
                       "skipped_files": record["skipped"]}, indent=1)
    atomic_write(os.path.join(out, "metrics.json"), lambda f: f.write(text.encode()))


def plot_curves(out, history):
    """out/curves.png: training and validation loss, and training top-1 and validation top-1 and top-5,
    by epoch. (A Figure of its own, not pyplot's: the process's plotting backend stays as it is.)"""
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in history]
    figure = Figure(figsize=(10, 4))
    losses, accuracies = figure.subplots(1, 2)
    losses.plot(epochs, [row["train_loss"] for row in history], "o-", label="train")
    losses.plot(epochs, [row["val_loss"] for row in history], "o-", label="validation")
    losses.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    accuracies.plot(epochs, [row["train_top1"] for row in history], "o-", label="train top-1")
    accuracies.plot(epochs, [row["val_top1"] for row in history], "o-", label="validation top-1")
    accuracies.plot(epochs, [row["val_top5"] for row in history], "o-", label="validation top-5")
    accuracies.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for axes in (losses, accuracies):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    atomic_write(os.path.join(out, "curves.png"), lambda f: figure.savefig(f, format="png", dpi=100))
