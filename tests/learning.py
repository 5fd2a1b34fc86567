"""What the "learns" tests read and assert: metrics as Lightning holds them (not what reached wandb), and a
model's held-out score against baselines the tests compute, so that a model that learned nothing fails.

Add the recorder to a run with `--trainer.callbacks+=learning.MetricHistory` (tests/ is on the path) and read
it back with `recorded(result)`.
"""
from __future__ import annotations

from lightning.pytorch import Callback

RECORD = "--trainer.callbacks+=learning.MetricHistory"


def numbers(metrics, prefix: str) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefix) and v.numel() == 1}


class MetricHistory(Callback):
    """Each epoch's train and val metrics and the test metrics, from trainer.callback_metrics."""

    def __init__(self):
        self.train: list[dict[str, float]] = []
        self.val: list[dict[str, float]] = []
        self.test: dict[str, float] = {}

    def on_train_epoch_end(self, trainer, pl_module):
        self.train.append(numbers(trainer.callback_metrics, "train/"))

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.val.append(numbers(trainer.callback_metrics, "val/"))

    def on_test_end(self, trainer, pl_module):
        self.test = numbers(trainer.callback_metrics, "test/")


def recorded(result) -> MetricHistory:
    """The MetricHistory of a TrainResult's trainer."""
    (recorder,) = [c for c in result.trainer.callbacks if isinstance(c, MetricHistory)]
    return recorder


def assert_beats(score: float, baselines: dict[str, float], margin: float, higher_is_better: bool = False) -> None:
    """score beats every baseline by at least margin (in the metric's units)."""
    shown = f"model {score:.4g}; " + ", ".join(f"{name} {value:.4g}" for name, value in baselines.items())
    for name, value in baselines.items():
        gain = score - value if higher_is_better else value - score
        assert gain >= margin, f"does not beat the {name} baseline by {margin:.4g}: {shown}"
