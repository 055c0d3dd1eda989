"""trainkit.tasks: the loss-option table comes from configs/loss/, and every option's loss has a home task."""

from __future__ import annotations

from trainkit.tasks import TASKS, loss_options


def test_loss_options_are_read_from_the_loss_configs() -> None:
    options = loss_options()
    # the table once kept by hand, entry for entry
    assert options == {
        "CrossEntropyLoss": "cross_entropy", "NLLLoss": "nll", "MultiMarginLoss": "multi_margin",
        "MSELoss": "mse", "L1Loss": "l1", "SmoothL1Loss": "smooth_l1", "HuberLoss": "huber",
        "BCELoss": "bce", "BCEWithLogitsLoss": "bce_with_logits", "SoftMarginLoss": "soft_margin",
        "MultiLabelMarginLoss": "multilabel_margin", "MultiLabelSoftMarginLoss": "multilabel_soft_margin",
        "KLDivLoss": "kl_div", "MarginRankingLoss": "margin_ranking", "CosineEmbeddingLoss": "cosine_embedding",
        "HingeEmbeddingLoss": "hinge_embedding", "TripletMarginLoss": "triplet_margin", "CTCLoss": "ctc",
    }
    fitting = {loss for cls in TASKS.values() for loss in cls.losses}
    assert set(options) <= fitting  # every loss= option feeds at least one task


def test_soft_targets_counts_the_same_correct_with_log_targets() -> None:
    import torch
    from torch import nn

    from trainkit.tasks import SoftTargets

    torch.manual_seed(0)
    model, x, y = nn.Linear(4, 3), torch.randn(8, 4), torch.randint(0, 3, (8,))
    task = SoftTargets(out_features=3)
    plain = task.step(model, nn.KLDivLoss(reduction="batchmean"), (x, y))[1]
    logged = task.step(model, nn.KLDivLoss(reduction="batchmean", log_target=True), (x, y))[1]
    assert int(plain["correct"]) == int(logged["correct"]) == int((model(x).argmax(1) == y).sum())
