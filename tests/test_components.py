"""Every building block of the seed notes trains from its config name: losses, optimizers, schedulers, models.

In-process (compose + run.train) on small embedded data, so the whole set stays fast; a few
subprocess tests cover the real CLI paths (a mismatch exits 2, CTC on digit strings).
"""

from __future__ import annotations

import copy
import csv
import json
import math
import re
import shlex
from pathlib import Path

import pytest
import torch
from conftest import run_cli, run_dirs
from omegaconf import DictConfig, OmegaConf, open_dict

from trainkit.config import compose, config_dir
from trainkit.loop import fit
from trainkit.run import Run, train

QUICK = ["trainer.progress=none", "device=cpu", "trainer.epochs=3"]


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory: pytest.TempPathFactory) -> str:
    """400 digits as a tensor file (data=tensor_file), so each run takes a fraction of a second."""
    from trainkit.data.embedded import digits

    ds = digits()
    path = tmp_path_factory.mktemp("data") / "digits400.pt"
    torch.save({"x": ds.tensors[0][:400].clone(), "y": ds.tensors[1][:400].clone()}, path)
    return str(path)


@pytest.fixture(scope="module")
def base_cfg(small_digits: str) -> DictConfig:
    """The composed default run on the small digits; tests swap in one group's YAML (Hydra's compose costs ~0.5 s)."""
    return compose([*QUICK, "data=tensor_file", f"data.path={small_digits}"])


def with_options(base: DictConfig, overrides: str) -> DictConfig:
    """`group=option` loads configs/<group>/<option>.yaml into the group (only for files without a defaults
    list: model, optim, scheduler); `key=value` sets a value, as on the command line."""
    cfg = copy.deepcopy(base)
    dotlist = []
    for item in overrides.split():
        key, _, value = item.partition("=")
        if "." not in key:
            node = OmegaConf.load(config_dir() / key / f"{value}.yaml")
            assert "defaults" not in node, f"{key}/{value}.yaml has a defaults list: compose it instead"
            cfg[key] = node
        else:
            dotlist.append(item)
    cfg.merge_with_dotlist(dotlist)
    return cfg


def fit_rows(cfg: DictConfig, run_dir: Path) -> list[dict[str, float]]:
    """Run.setup (the real build and checks), loop.fit and metrics.csv, without checkpoints (they cost more
    than these tiny trainings); returns metrics.csv's rows."""
    torch.set_num_threads(1)
    run = Run(cfg, run_dir)
    try:
        run.setup()

        def log(row: dict) -> None:
            for logger in run.loggers:
                logger.log_epoch(row)

        fit(run.loop, run.data.train, run.data.val, run.state, int(cfg.trainer.epochs), str(cfg.trainer.monitor), log)
    finally:
        run.close()
    return read_rows(run_dir / "metrics.csv")


def read_rows(path: Path) -> list[dict[str, float]]:
    with open(path) as fh:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(fh)]


def train_rows(overrides: list[str], run_dir: Path) -> tuple[list[dict[str, float]], dict, str]:
    """The whole `trainkit train` path in-process: compose, train, test; metrics.csv, summary, the task's name."""
    from trainkit.tasks import TASKS

    cfg = compose([*QUICK, *overrides])
    task = next(name for name, cls in TASKS.items() if str(cfg.task._target_).endswith("." + cls.__name__))
    torch.set_num_threads(1)
    summary = train(cfg, run_dir)
    return read_rows(run_dir / "metrics.csv"), summary, task


def small(overrides: str, path: str) -> list[str]:
    return [*overrides.split(), "data=tensor_file", f"data.path={path}"]


# One run per loss, on the data its task fits; derived tasks (pairs, triplets, ...) use digits.
LOSSES = {
    "cross_entropy": "loss=cross_entropy loss.weight=auto loss.label_smoothing=0.1",
    "nll": "loss=nll",
    "multi_margin": "loss=multi_margin",
    "mse": "loss=mse",
    "l1": "loss=l1 optim.lr=0.3",
    "smooth_l1": "loss=smooth_l1",
    "huber": "loss=huber loss.delta=0.5",
    "bce": "loss=bce",
    "bce_with_logits": "loss=bce_with_logits",
    "soft_margin": "loss=soft_margin",
    "multilabel_margin": "loss=multilabel_margin DIGITS",
    "multilabel_soft_margin": "loss=multilabel_soft_margin DIGITS",
    "bce_with_logits_multilabel": "loss=bce_with_logits task=multilabel DIGITS",
    "kl_div": "loss=kl_div DIGITS",
    "margin_ranking": "loss=margin_ranking DIGITS",
    "cosine_embedding": "loss=cosine_embedding model=embedding_net DIGITS",
    "hinge_embedding": "loss=hinge_embedding DIGITS",
    "triplet_margin": "loss=triplet_margin DIGITS",
    "ctc": "loss=ctc model.hidden=16 data.dataset.size=160 data.batch_size=32 trainer.epochs=2",
}


def _expand(spec: str, path: str) -> list[str]:
    if "DIGITS" in spec:
        return small(spec.replace("DIGITS", ""), path)
    return spec.split()


# The metrics each task adds to train_/val_/test_ besides the loss.
TASK_METRICS = {
    "classification": {"acc"}, "regression": {"mae", "rmse"}, "binary": {"acc"}, "soft_targets": {"acc"},
    "multilabel": {"acc", "label_acc", "acc_even", "acc_greater_than_4", "acc_prime"},
    "pairs": {"acc"}, "triplets": {"acc"}, "sequence": {"acc"},
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_trains_on_its_task_and_data(name: str, small_digits: str, tmp_path: Path) -> None:
    rows, summary, task = train_rows(_expand(LOSSES[name], small_digits), tmp_path / "run")
    assert rows[-1]["train_loss"] < rows[0]["train_loss"], [r["train_loss"] for r in rows]
    assert math.isfinite(summary["test_loss"])
    metrics = TASK_METRICS[task]
    assert {f"test_{m}" for m in metrics} <= summary.keys(), summary.keys()
    assert {f"train_{m}" for m in metrics} | {f"val_{m}" for m in metrics} <= rows[0].keys()
    if task == "multilabel":  # multilabel: exact match needs every label right; label_acc is their mean
        per_label = [summary[f"test_acc_{n}"] for n in ("even", "greater_than_4", "prime")]
        assert summary["test_label_acc"] == pytest.approx(sum(per_label) / 3)
        assert summary["test_acc"] <= min(per_label)


OPTIMIZERS = {
    "sgd": "optim=sgd optim.nesterov=true",
    "asgd": "optim=asgd",
    "adadelta": "optim=adadelta",
    "adagrad": "optim=adagrad",
    "adam": "optim=adam optim.amsgrad=true optim.lr=0.005",
    "adamw": "optim=adamw optim.lr=0.005",
    "adamax": "optim=adamax optim.lr=0.01",
    "lbfgs": "optim=lbfgs data.batch_size=400",
    "rmsprop": "optim=rmsprop",
    "rprop": "optim=rprop",
    "sparse_adam": "optim=sparse_adam model=embedding_bag",
    "nadam": "optim=nadam",
    "radam": "optim=radam optim.lr=0.01",
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_lowers_the_training_loss(name: str, base_cfg: DictConfig, tmp_path: Path) -> None:
    rows = fit_rows(with_options(base_cfg, OPTIMIZERS[name]), tmp_path / "run")
    assert rows[-1]["train_loss"] < rows[0]["train_loss"], [r["train_loss"] for r in rows]


def _onecycle_lrs(lr: float, epochs: int, steps: int) -> list[float]:
    """What OneCycleLR gives at the start of each epoch when stepped once per optimizer step."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps, cycle_momentum=False)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        for _ in range(steps):
            opt.step()
            sched.step()
    return out


SCHEDULERS = {
    "none": ("scheduler=none", [0.1] * 4),
    "step": ("scheduler=step scheduler.step_size=2 scheduler.gamma=0.1", [0.1, 0.1, 0.01, 0.01]),
    "multistep": ("scheduler=multistep scheduler.milestones=[1,3] scheduler.gamma=0.5", [0.1, 0.05, 0.05, 0.025]),
    "exponential": ("scheduler=exponential scheduler.gamma=0.5", [0.1, 0.05, 0.025, 0.0125]),
    "cosine": ("scheduler=cosine", [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]),
    # 320 training samples / batch 64 = 5 optimizer steps per epoch.
    "onecycle": ("scheduler=onecycle", _onecycle_lrs(0.1, 4, 5)),
    # On val_loss (mode min), threshold=1 (relative) means no epoch counts as an improvement: lr x0.1 after each.
    "plateau": ("scheduler=plateau scheduler.patience=0 scheduler.threshold=1.0 trainer.monitor=val_loss",
                [0.1, 0.01, 0.001, 0.0001]),
    # warm-up over 2 epochs (0.05, 0.1), then cosine over the remaining 3: 0.1 * (1 + cos(pi * k / 3)) / 2.
    "warmup_cosine": ("scheduler=warmup_cosine scheduler.warmup_epochs=2", [0.05, 0.1, 0.075, 0.025]),
}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_scheduler_writes_its_exact_lr_per_epoch(name: str, base_cfg: DictConfig, tmp_path: Path) -> None:
    spec, expected = SCHEDULERS[name]
    rows = fit_rows(with_options(base_cfg, f"{spec} trainer.epochs=4 optim.lr=0.1"), tmp_path / "run")
    assert [r["lr"] for r in rows] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]


def test_warmup_cosine_state_loads_with_weights_only(tmp_path: Path) -> None:
    from trainkit.schedulers import WarmupCosine

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = WarmupCosine(opt, warmup_epochs=2, max_epochs=5)
    opt.step()
    sched.step()
    torch.save(sched.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    again = WarmupCosine(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), 2, 5)
    again.load_state_dict(state)
    assert again.last_epoch == 1 and again.get_last_lr() == pytest.approx([0.1])


MODELS = {
    "mlp": "model=mlp model.hidden=[64,32] model.activation=tanh model.dropout=0.1",
    "cnn": "model=cnn model.channels=[8,16] model.hidden=32",
    "linear": "model=linear model.init=xavier_uniform",
    "sequential": "model=sequential model.layers.fc1.out_features=32",
    "resnet18": "model=resnet18 data.batch_size=16 trainer.epochs=2 optim.lr=0.02 LIMIT",
    "embedding_bag": "model=embedding_bag",
    "embedding_net": "model=embedding_net loss=triplet_margin DIGITS",
    "crnn": "loss=ctc model=crnn model.channels=[8,16] model.hidden=16 data.dataset.size=160 data.batch_size=32 trainer.epochs=2",
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_trains(name: str, base_cfg: DictConfig, small_digits: str, tmp_path: Path) -> None:
    spec = MODELS[name]
    if "LIMIT" in spec:  # resnet18 is ~11M parameters: 48 digits are plenty to see it learn
        from trainkit.data.embedded import digits

        ds, path = digits(), tmp_path / "tiny.pt"
        torch.save({"x": ds.tensors[0][:48].clone(), "y": ds.tensors[1][:48].clone()}, path)
        spec = spec.replace("LIMIT", f"data.path={path}")
    # A loss picks its task (and the task its data): that needs the full composition.
    cfg = compose([*QUICK, *_expand(spec, small_digits)]) if "loss=" in spec else with_options(base_cfg, spec)
    rows = fit_rows(cfg, tmp_path / "run")
    assert rows[-1]["train_loss"] < rows[0]["train_loss"], [r["train_loss"] for r in rows]
    text = (tmp_path / "run" / "model.txt").read_text()
    if name == "sequential":
        assert "(fc1): Linear(in_features=64, out_features=32" in text
    if name == "embedding_net":
        assert "ModuleDict" in text
    if name == "mlp":
        assert "ModuleList" in text


# ---------------------------------------------------------------------------- the real CLI


def test_mismatched_loss_and_task_exits_2_naming_what_fits(tmp_path: Path) -> None:
    proc = run_cli(["train", "task=classification", "loss=mse", "trainer.epochs=1", "trainer.progress=none"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()[-1]
    assert "loss=mse (MSELoss) does not fit task=classification" in err
    assert "cross_entropy, nll, multi_margin" in err and "fits task=regression" in err
    assert "Traceback" not in proc.stderr


def test_ctc_on_digit_strings_from_the_command_line(tmp_path: Path) -> None:
    proc = run_cli(
        ["train", "task=sequence", "data=digit_strings", "loss=ctc", "data.dataset.size=64", "model.hidden=16",
         "trainer.epochs=1", "trainer.progress=plain"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (run_dir,) = run_dirs(tmp_path / "outputs")
    with open(run_dir / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert "val_acc" in rows[0] and "CRNN" in (run_dir / "model.txt").read_text()
    assert "test_acc" in json.loads((run_dir / "summary.json").read_text())


# ---------------------------------------------------------------------------- composition and building blocks


@pytest.mark.parametrize(
    ("overrides", "task", "data", "loss"),
    [
        (["loss=mse"], "regression", "diabetes", "MSELoss"),
        (["loss=bce_with_logits", "task=multilabel"], "multilabel", "digits", "BCEWithLogitsLoss"),
        (["loss=ctc"], "sequence", "digit_strings", "CTCLoss"),
        (["loss=mse", "data=digits"], "regression", "digits", "MSELoss"),
        (["loss=mse", "task=classification"], "classification", "digits", "MSELoss"),
    ],
)
def test_a_loss_picks_its_task_but_the_command_line_wins(overrides: list[str], task: str, data: str, loss: str) -> None:
    cfg = compose(overrides, return_hydra_config=True)
    assert cfg.hydra.runtime.choices["task"] == task
    assert cfg.data.name == data
    assert cfg.loss._target_.endswith(loss)


def test_mismatch_message_lists_the_losses_and_tasks_that_fit() -> None:
    from trainkit.errors import ConfigError
    from trainkit.tasks import Pairs, Sequence

    with pytest.raises(ConfigError, match=r"losses that fit task=pairs: cosine_embedding, hinge_embedding, margin_ranking"):
        Pairs().check_criterion(torch.nn.CTCLoss())
    with pytest.raises(ConfigError, match=r"loss=triplet_margin fits task=triplets"):
        Sequence().check_criterion(torch.nn.TripletMarginLoss())


def test_model_that_does_not_fit_the_task_is_refused_with_the_fix(base_cfg: DictConfig, tmp_path: Path) -> None:
    from trainkit.errors import ConfigError

    cfg = compose(["loss=ctc", "model=mlp", "data.dataset.size=32", *QUICK])
    with pytest.raises(ConfigError, match=r"task=sequence needs per-timestep scores .* use model=crnn"):
        fit_rows(cfg, tmp_path / "run")


def test_sparse_adam_needs_the_sparse_model_and_says_so(base_cfg: DictConfig) -> None:
    from trainkit.build import build_model, build_optimizer
    from trainkit.errors import ConfigError

    cfg = with_options(base_cfg, "optim=sparse_adam")
    with open_dict(cfg.data):
        cfg.data.input_shape = [1, 8, 8]
        cfg.data.num_classes = 10
    with pytest.raises(ConfigError, match=r"optim=sparse_adam needs .* use model=embedding_bag"):
        build_optimizer(cfg, build_model(cfg))
    cfg = with_options(cfg, "model=embedding_bag")
    assert isinstance(build_optimizer(cfg, build_model(cfg)), torch.optim.SparseAdam)


def test_param_groups_match_parameter_names(base_cfg: DictConfig) -> None:
    from trainkit.build import build_model, build_optimizer
    from trainkit.errors import ConfigError

    cfg = with_options(base_cfg, "optim=sgd optim.weight_decay=0.01")
    with open_dict(cfg.data):
        cfg.data.input_shape = [1, 8, 8]
        cfg.data.num_classes = 10
    cfg.optim.param_groups = [{"params": "hidden.*", "lr": 0.01}, {"params": ["*.bias"], "weight_decay": 0.0}]
    model = build_model(cfg)
    groups = build_optimizer(cfg, model).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert [sorted(names[id(p)] for p in g["params"]) for g in groups] == [
        ["hidden.0.0.bias", "hidden.0.0.weight"], ["head.bias"], ["head.weight"]]
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(0.01, 0.01), (0.1, 0.0), (0.1, 0.01)]
    cfg.optim.param_groups = [{"params": "features.*", "lr": 0.01}]
    with pytest.raises(ConfigError, match=r"matches no parameter.*hidden.0.0.weight"):
        build_optimizer(cfg, model)


def test_loss_weight_auto_is_inverse_class_frequency() -> None:
    from torch.utils.data import TensorDataset

    from trainkit.build_extras import loss_weight

    y = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)
    data = type("D", (), {"train_split": TensorDataset(torch.zeros(10, 2), y)})()
    cfg = OmegaConf.create({"loss": {"weight": "auto"}, "data": {"num_classes": 3}})
    # sklearn's balanced weights: n / (classes * count)
    assert loss_weight(cfg, data).tolist() == pytest.approx([10 / 18, 10 / 9, 10 / 3])
    cfg.loss.weight = [1.0, 2.0, 3.0]
    assert loss_weight(cfg, data).tolist() == [1.0, 2.0, 3.0]
    from trainkit.build import build_loss

    criterion = build_loss(compose(["loss=bce_with_logits", "loss.pos_weight=2.5"]))
    assert criterion.pos_weight.tolist() == [2.5]


def test_weighted_sampler_balances_classes_and_repeats_under_the_seed() -> None:
    from torch.utils.data import TensorDataset

    from trainkit.data.loaders import TensorLoader
    from trainkit.data.sampling import balanced_sample_weights

    y = torch.tensor([0] * 90 + [1] * 10)
    ds = TensorDataset(torch.arange(100).float().unsqueeze(1), y)

    def epoch_labels(epoch: int) -> torch.Tensor:
        loader = TensorLoader(ds.tensors, 1000, True, False, seed=3)
        loader.sample_weights = balanced_sample_weights(ds)
        loader.set_epoch(epoch)
        return torch.cat([b[1] for b in loader])

    first = epoch_labels(0)
    assert 35 <= int(first.sum()) <= 65  # the 10% class drawn about half the time
    assert torch.equal(first, epoch_labels(0)) and not torch.equal(first, epoch_labels(1))
    # The DataLoader path draws the same order (same function of seed and epoch).
    from trainkit.data.loaders import TorchLoader

    loader = TorchLoader(ds, 1000, True, False, seed=3, sample_weights=balanced_sample_weights(ds))
    loader.set_epoch(0)
    assert torch.equal(torch.cat([b[1] for b in loader]), first)


def test_user_data_files_tensor_csv_and_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    from trainkit.data.files import csv as csv_data
    from trainkit.data.files import image_folder, tensor_file
    from trainkit.errors import DataError

    torch.save({"x": torch.randn(20, 3), "y": torch.arange(20) % 2, "x_test": torch.randn(4, 3), "y_test": torch.zeros(4)},
               tmp_path / "t.pt")
    splits = tensor_file(str(tmp_path / "t.pt"))
    assert len(splits["train"]) == 20 and len(splits["test"]) == 4 and splits["val"] is None
    with pytest.raises(DataError, match="data.path=.*does not exist"):
        tensor_file(str(tmp_path / "missing.pt"))

    (tmp_path / "t.csv").write_text("a,b,kind\n1,2,cat\n3,4,dog\n5,6,cat\n")
    ds = csv_data(str(tmp_path / "t.csv"), label_column="kind")
    assert ds.tensors[0].tolist() == [[1, 2], [3, 4], [5, 6]] and ds.tensors[1].tolist() == [0, 1, 0]
    (tmp_path / "r.csv").write_text("x,y\n1,0.5\n2,1.5\n")
    assert csv_data(str(tmp_path / "r.csv"), label_column="y").tensors[1].dtype == torch.float32
    with pytest.raises(DataError, match="label_column=z is not a column.*2 columns"):  # counted, never quoted
        csv_data(str(tmp_path / "r.csv"), label_column="z")

    for cls in ("ants", "bees"):
        (tmp_path / "img" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (12, 10), (i * 40, 0, 0)).save(tmp_path / "img" / cls / f"{i}.png")
    tf = [{"_target_": "torchvision.transforms.Resize", "size": [8, 8]}, {"_target_": "torchvision.transforms.ToTensor"}]
    aug = [{"_target_": "torchvision.transforms.RandomHorizontalFlip"}, *tf]
    out = image_folder(str(tmp_path / "img"), train_transforms=aug, eval_transforms=tf)
    assert out["train"].classes == ["ants", "bees"] and out["train_eval"][0][0].shape == (3, 8, 8)
    assert "RandomHorizontalFlip" in repr(out["train"].transform)
    assert "RandomHorizontalFlip" not in repr(out["train_eval"].transform)


def test_digit_strings_are_digits_side_by_side_with_blank_padded_labels() -> None:
    from trainkit.data.embedded import digit_strings

    x, targets, lengths = digit_strings(size=50, seed=1).tensors
    assert x.shape == (50, 1, 8, 40) and targets.shape == (50, 5)
    assert int(lengths.min()) >= 2 and int(lengths.max()) <= 5
    for row, n in zip(targets, lengths, strict=True):
        assert bool((row[:n] >= 1).all()) and bool((row[n:] == 0).all())  # digit + 1, then blanks
    assert torch.equal(x, digit_strings(size=50, seed=1).tensors[0])


def test_pairs_come_from_the_batch_without_randomness() -> None:
    from trainkit.tasks import batch_partners

    y = torch.tensor([0, 1, 0, 2, 1])
    pos, neg = batch_partners(y)
    assert pos.tolist() == [2, 4, 0, 3, 1]  # next same-class sample (sample 3 has none: itself)
    assert neg.tolist() == [1, 2, 3, 4, 0]  # next different-class sample
    state = torch.get_rng_state()
    batch_partners(y)
    assert torch.equal(state, torch.get_rng_state())


def test_sequence_accuracy_decodes_greedily() -> None:
    from trainkit.tasks import Sequence

    best = torch.tensor([[0, 3, 3, 0, 3, 5, 0], [2, 2, 0, 0, 0, 0, 0]])  # "3 3 5" and "2"
    targets = torch.tensor([[3, 3, 5], [2, 4, 0]])
    assert int(Sequence().exact_matches(best, targets, torch.tensor([3, 2]))) == 1


def _doc_commands() -> list[str]:
    text = (Path(__file__).resolve().parent.parent / "docs" / "components.md").read_text()
    found = re.findall(r"`(trainkit train[^`]*)`", text)
    found += [line.strip() for line in text.splitlines() if line.strip().startswith("trainkit train ")]
    return sorted({c for c in found if "data=mnist" not in c})  # mnist needs its files (or a download)


@pytest.mark.slow
@pytest.mark.parametrize("command", _doc_commands())
def test_every_command_in_components_doc_trains_an_epoch(command: str, tmp_path: Path, monkeypatch) -> None:
    """The docs' commands as written (plus trainer.epochs=1), with the user files they name made up here."""
    from PIL import Image

    from trainkit.data.embedded import digits

    monkeypatch.chdir(tmp_path)
    ds = digits()
    torch.save({"x": ds.tensors[0][:300].clone(), "y": ds.tensors[1][:300].clone()}, "my_data.pt")
    rows = ["a,b,c,species"] + [f"{i % 7},{i % 3},{(i * 5) % 11},{'setosa' if i % 2 else 'virginica'}" for i in range(60)]
    Path("my_table.csv").write_text("\n".join(rows) + "\n")
    from test_docs_commands import make_array_data

    feats = torch.tensor([[i % 7, i % 3, (i * 5) % 11, i % 2] for i in range(60)], dtype=torch.float32)
    make_array_data(tmp_path, feats.numpy(), (feats[:, 3] > 0).long().numpy(), ["setosa" if i % 2 else "virginica" for i in range(60)])
    for cls in ("ants", "bees"):
        Path("my_images", cls).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (20, 20), (i * 20, 100 if cls == "ants" else 0, 0)).save(f"my_images/{cls}/{i}.png")
    args = shlex.split(command)[2:]
    cfg = compose([*args, "trainer.epochs=1", "trainer.progress=none", "device=cpu"])
    rows_out = fit_rows(cfg, tmp_path / "run")
    assert math.isfinite(rows_out[0]["train_loss"])


@pytest.mark.parametrize(("option", "key"), [("tensor_file", "data.path"), ("csv", "data.path"), ("image_folder", "data.root")])
def test_user_data_without_its_path_is_a_one_line_error_not_a_traceback(option: str, key: str) -> None:
    # `trainkit train data=tensor_file` (path forgotten) used to die in OmegaConf with a traceback.
    from trainkit.config import compose, validate
    from trainkit.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(f"{key} has no value (???); give it on the command line, e.g. {key}=...")):
        validate(compose([f"data={option}"]))
