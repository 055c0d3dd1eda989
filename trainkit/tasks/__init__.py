"""Tasks: how a batch becomes model outputs, a loss and metric sums.

The classes live in one module per kind of target; every name is importable from here, and the
configs name them here (`_target_: trainkit.tasks.Classification`), as stored checkpoints do.
"""

from __future__ import annotations

from trainkit.tasks.base import TASKS, Batch, Task, check_monitor, loss_options, tasks_for_loss
from trainkit.tasks.classification import LABEL_RULES, Binary, Classification, Multilabel, SoftTargets
from trainkit.tasks.metric_learning import Pairs, Triplets, batch_partners
from trainkit.tasks.regression import Regression
from trainkit.tasks.sequence import Sequence

TASKS.update(
    {cls.name: cls for cls in (Classification, Regression, Binary, Multilabel, SoftTargets, Pairs, Triplets, Sequence)}
)

__all__ = [
    "LABEL_RULES", "TASKS", "Batch", "Binary", "Classification", "Multilabel", "Pairs", "Regression", "Sequence",
    "SoftTargets", "Task", "Triplets", "batch_partners", "check_monitor", "loss_options", "tasks_for_loss",
]
