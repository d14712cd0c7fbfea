"""How long to train and when to evaluate: a plan that adapts to the size of the training folder.

The paper trains ImageNet's 1.2 million images for 90 epochs, dividing the learning rate by 10 when
the validation error stops improving, three times in all (section 5). A fixed epoch count does not
carry over to small folders: 7 epochs are 650 steps on the 6,000 images of the synthetic set but 150
steps on 1,400 images, far too few to converge, and a patience of one epoch on a folder that small
divides the rate at the first noisy validation figure.

So the small preset, without --epochs, trains for a budget of optimisation STEPS (STEP_BUDGET), and at
least MIN_EPOCHS epochs, whichever is longer:

    epochs  = clamp(ceil(STEP_BUDGET / steps per epoch), MIN_EPOCHS, MAX_EPOCHS)

and measures the plateau in EVALUATIONS, not epochs: it evaluates about EVALUATIONS times over the
run, once per epoch when epochs are short, several times per epoch when they are long (a folder of
50,000 images trains MIN_EPOCHS epochs of 781 steps), and divides the rate by 10 after PATIENCE
evaluations without improvement, or an eighth of the run's evaluations if that is more (at most
3 times, as the paper). A folder of 500 images trains ~170 epochs of 7 steps; one of 50,000 trains
10 epochs with 2 evaluations each.

A budget also needs its end: on a few hundred validation images the error moves by a few points from
one evaluation to the next, and a noisy best can hold the plateau off until the budget is spent, so that
a run ends at its first rate. So the plan has a LAST_CALL: a run whose rate has not fallen by that share
of its steps has it divided by 10 at the next evaluation. Measured on the photographs folder (three
seeds): the plateau's own first reduction came at 85-89% of the budget or not at all, and the run that
never reduced ended 5 points lower; earlier forced reductions (at 50, 75 and 90%) lost 1-4 points.
benchmarks/results/real_folders.md has the figures these numbers were chosen from.

The paper preset keeps the paper's recipe: 90 epochs, one evaluation per epoch, patience 2 epochs, no
last call. --epochs is always exact. A folder too small for four batches of the preset's size per epoch
gets a smaller batch (batch_size()), unless --batch-size is given.
"""
import math
from dataclasses import asdict, dataclass, replace

STEP_BUDGET = 1200          # small preset: SGD steps of batch 64 (measured: enough for 97-99% on digits)
MIN_EPOCHS = 10             # every image seen at least this often, whatever the folder's size
MAX_EPOCHS = 300            # a folder of a few dozen images: do not loop forever on it
EVALUATIONS = 24            # the plateau schedule's view of the run
PATIENCE = 3                # evaluations without improvement before the rate is divided by 10, at least,
PATIENCE_FRACTION = 1 / 8   # and at least this share of the run's evaluations (short epochs: many of them)
LAST_CALL = 0.85           # of the plan's steps: the rate falls then if the plateau has not lowered it
MIN_BATCH = 8              # the smallest batch the preset's own is halved to for a tiny folder
PAPER = {"epochs": 90, "patience": 2}      # section 5, one evaluation per epoch


@dataclass(frozen=True)
class Plan:
    epochs: int
    steps_per_epoch: int
    evaluations_per_epoch: int
    patience: int            # in evaluations
    why: str
    last_call: int = None    # the step after which a rate never lowered is lowered (None: no last call)

    @property
    def steps(self):
        return self.epochs * self.steps_per_epoch

    @property
    def evaluations(self):
        return self.epochs * self.evaluations_per_epoch

    def evaluation_steps(self):
        """The steps (0-based, within an epoch) after which the model is evaluated: evenly spaced,
        the last one at the end of the epoch (so every epoch's checkpoint follows an evaluation)."""
        n, k = self.steps_per_epoch, self.evaluations_per_epoch
        return [round(n * (i + 1) / k) - 1 for i in range(k)]

    def to_dict(self):
        return asdict(self)

    def describe(self):
        last_call = "" if self.last_call is None else f", and at step {self.last_call} if it has not fallen by then"
        return (f"plan: {self.epochs} epochs of {self.steps_per_epoch} steps = {self.steps} steps, "
                f"{self.evaluations} evaluations ({self.evaluations_per_epoch} per epoch), learning rate "
                f"/10 after {self.patience} evaluations without improvement (3 times at most){last_call}; {self.why}")


def extended(plan, epochs):
    """The plan of a resumed run given --epochs: that many epochs, and its last call moved to the same
    share of the new length (one already made is not undone)."""
    last_call = None if plan.last_call is None else round(LAST_CALL * epochs * plan.steps_per_epoch)
    return replace(plan, epochs=epochs, last_call=last_call, why=f"--epochs {epochs} given on resuming")


def batch_size(preset_batch, train_images):
    """The preset's batch, halved (not below MIN_BATCH) until an epoch of `train_images` holds four."""
    batch = preset_batch
    while batch > MIN_BATCH and train_images < 4 * batch:
        batch //= 2
    return batch


def plan(preset, train_images, batch_size, epochs=None):
    """The Plan for `train_images` training images in batches of `batch_size` (the last, smaller batch
    is dropped). `epochs`: the user's --epochs, kept exactly."""
    if not isinstance(train_images, int) or train_images < batch_size:
        raise ValueError(f"recipe: {train_images} training images is fewer than one batch of {batch_size}; "
                         f"give a smaller --batch-size")
    steps_per_epoch = train_images // batch_size
    if preset == "paper":
        chosen = epochs or PAPER["epochs"]
        why = "--epochs as given" if epochs else "the paper's 90 epochs (section 5)"
        return Plan(chosen, steps_per_epoch, 1, PAPER["patience"], why + ", one evaluation per epoch")
    if epochs:
        chosen, why = epochs, "--epochs as given"
    else:
        needed = math.ceil(STEP_BUDGET / steps_per_epoch)
        chosen = min(max(needed, MIN_EPOCHS), MAX_EPOCHS)
        if chosen == needed:
            why = f"a budget of {STEP_BUDGET} steps at {steps_per_epoch} steps per epoch"
        elif chosen == MIN_EPOCHS:
            why = f"at least {MIN_EPOCHS} epochs (the {STEP_BUDGET}-step budget is less than that)"
        else:
            why = f"at most {MAX_EPOCHS} epochs (a {STEP_BUDGET}-step budget would need {needed})"
    per_epoch = min(steps_per_epoch, max(1, round(EVALUATIONS / chosen)))
    patience = max(PATIENCE, round(PATIENCE_FRACTION * chosen * per_epoch))
    return Plan(chosen, steps_per_epoch, per_epoch, patience, why, round(LAST_CALL * chosen * steps_per_epoch))
