"""minigrad/recipe.py: the training plan for folders of very different sizes."""
import pytest

from minigrad import recipe


@pytest.mark.parametrize("images", [200, 500, 1_500, 6_000, 50_000, 1_281_167])
def test_the_small_plan_trains_the_step_budget_or_the_minimum_epochs(images):
    plan = recipe.plan("small", images, 64)
    assert plan.steps_per_epoch == images // 64
    assert recipe.MIN_EPOCHS <= plan.epochs <= recipe.MAX_EPOCHS
    if plan.epochs == recipe.MIN_EPOCHS:               # a large folder: every image seen MIN_EPOCHS times
        assert plan.steps >= recipe.STEP_BUDGET
    elif plan.epochs < recipe.MAX_EPOCHS:              # otherwise the budget, to within one epoch
        assert recipe.STEP_BUDGET <= plan.steps < recipe.STEP_BUDGET + plan.steps_per_epoch
    # The plateau is watched about EVALUATIONS times (more when epochs are short: once per epoch),
    # with a patience that is a real share of the run, never below PATIENCE evaluations.
    assert plan.evaluations >= recipe.EVALUATIONS // 2
    assert plan.patience >= recipe.PATIENCE and plan.patience >= plan.evaluations // 10
    assert plan.patience * 4 < plan.evaluations        # room for the paper's three reductions


def test_sizes_far_apart_get_the_plans_they_need():
    small, synthetic, large = (recipe.plan("small", n, 64) for n in (1_500, 6_000, 50_000))
    assert (small.epochs, small.steps_per_epoch, small.evaluations_per_epoch) == (53, 23, 1)
    assert (synthetic.epochs, synthetic.evaluations_per_epoch) == (13, 2)
    assert (large.epochs, large.steps_per_epoch, large.evaluations_per_epoch) == (10, 781, 2)
    assert small.patience > large.patience              # many noisy evaluations of a small val set
    tiny = recipe.plan("small", 128, 64)                # 2 steps per epoch: capped at MAX_EPOCHS
    assert tiny.epochs == recipe.MAX_EPOCHS and "at most" in tiny.why


def test_evaluation_steps_are_spread_and_end_the_epoch():
    plan = recipe.plan("small", 50_000, 64)
    steps = plan.evaluation_steps()
    assert steps[-1] == plan.steps_per_epoch - 1 and len(steps) == plan.evaluations_per_epoch
    assert steps == sorted(set(steps)) and steps[0] > 0
    assert recipe.plan("small", 1_500, 64).evaluation_steps() == [22]


@pytest.mark.parametrize("images", [200, 1_500, 50_000])
def test_a_rate_never_lowered_is_lowered_at_the_last_call(images):
    plan = recipe.plan("small", images, 64)
    assert plan.last_call == round(recipe.LAST_CALL * plan.steps)
    assert plan.steps - plan.last_call >= plan.steps // 10      # a tenth of the run at least at the lower rate
    assert f"at step {plan.last_call} if it has not fallen" in plan.describe()
    assert recipe.plan("small", images, 64, epochs=4).last_call == round(recipe.LAST_CALL * 4 * plan.steps_per_epoch)
    assert recipe.plan("paper", images, 64).last_call is None     # the paper's rule alone


def test_a_resumed_run_given_more_epochs_moves_its_last_call():
    plan = recipe.plan("small", 1_500, 64)
    longer = recipe.extended(plan, 2 * plan.epochs)
    assert (longer.epochs, longer.steps_per_epoch, longer.patience) == (2 * plan.epochs, 23, plan.patience)
    assert longer.last_call == round(recipe.LAST_CALL * 2 * plan.steps) and "resuming" in longer.why
    assert recipe.extended(recipe.plan("paper", 1_500, 64), 3).last_call is None


def test_a_tiny_folder_gets_a_smaller_batch():
    assert [recipe.batch_size(64, n) for n in (50_000, 256, 255, 160, 60, 5)] == [64, 64, 32, 32, 8, 8]
    assert recipe.batch_size(128, 1_000) == 128 and recipe.batch_size(128, 300) == 64


def test_epochs_given_are_exact_and_the_paper_keeps_its_recipe():
    assert recipe.plan("small", 1_500, 64, epochs=7).epochs == 7
    assert "as given" in recipe.plan("small", 50_000, 64, epochs=3).describe()
    paper = recipe.plan("paper", 1_281_167, 128)
    assert (paper.epochs, paper.evaluations_per_epoch, paper.patience) == (90, 1, 2)
    assert recipe.plan("paper", 1_281_167, 128, epochs=2).epochs == 2
    with pytest.raises(ValueError, match="fewer than one batch"):
        recipe.plan("small", 10, 64)
    text = recipe.plan("small", 1_500, 64).describe()
    assert "53 epochs" in text and "1219 steps" in text and "budget" in text
