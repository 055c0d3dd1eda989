"""data=csv / data=parquet on tables as they come: inferred column types, fitted on the training split only."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch

from trainkit.data import tables

HEADER = ["PassengerId", "Name", "Pclass", "Sex", "Age", "Fare", "Embarked", "Alone", "Survived"]


def titanic_like(path: Path, n: int = 800, seed: int = 0) -> list[list[str]]:
    """A Titanic-shaped table: an id, a name per row, text and boolean columns, empty cells; survival follows a rule."""
    r = random.Random(seed)
    rows = []
    for i in range(n):
        pclass, sex = r.choice([1, 2, 3, 3]), r.choice(["male", "female"])
        age, fare = r.uniform(1, 70), round(r.expovariate(pclass / 60), 2)
        score = (2.0 if sex == "female" else -1.0) + (1.5 if age < 12 else 0.0) - 0.6 * (pclass - 2) + r.gauss(0, 0.7)
        rows.append([str(i + 1), f"Person {i}, Mr. {r.randint(0, 10**6)}", str(pclass), sex,
                     "" if r.random() < 0.2 else f"{age:.1f}", str(fare), "" if r.random() < 0.03 else r.choice("SSCQ"),
                     r.choice(["True", "False"]), str(int(score > 0))])
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([HEADER, *rows])
    return rows


def test_fit_and_transform_types_holes_unseen_and_plain_values() -> None:
    train = {"n": ["1", "", "3", "4"], "c": ["a", "b", "a", ""], "b": ["yes", "no", "", "yes"], "id": ["x", "y", "z", "w"]}
    pre = tables.fit(train, {"id": "drop"})
    assert pre["features"] == ["n", "n=missing", "c=a", "c=b", "c=missing", "c=other", "b", "b=missing"]
    assert pre["dropped"] == ["id"]
    num = pre["columns"][0]
    assert num["fill"] == 3.0  # the median of 1, 3, 4; mean/std of the filled column 1, 3, 3, 4
    assert num["mean"] == pytest.approx(2.75) and num["std"] == pytest.approx(torch.tensor([1.0, 3, 3, 4]).std(unbiased=False).item())
    x = tables.transform([{"n": None, "c": "zebra", "b": True}, {"n": 4, "c": "b", "b": "no"}], pre)
    assert x.dtype == torch.float32 and x.shape == (2, 8)
    assert x[0, 1] == 1 and x[0, 5] == 1 and x[0, 6] == 1  # a hole flagged, an unseen category -> other, true -> 1
    assert x[1, 3] == 1 and x[1, 6] == 0 and x[1, 0] == pytest.approx((4 - 2.75) / num["std"])

    def plain(v: object) -> bool:
        return isinstance(v, (str, float)) or (isinstance(v, list) and all(map(plain, v))) or (
            isinstance(v, dict) and all(isinstance(k, str) and plain(x) for k, x in v.items()))

    assert plain(pre)


def test_categories_are_capped_and_identifiers_dropped() -> None:
    cells = [f"v{i % 30}" for i in range(300)] + ["v0"] * 50
    pre = tables.fit({"c": cells, "name": [f"n{i}" for i in range(350)]}, max_categories=5)
    assert pre["dropped"] == ["name"]
    col = pre["columns"][0]
    assert len(col["categories"]) == 5 and "v0" in col["categories"]
    assert tables.transform({"c": ["v29"]}, pre)[0, -1] == 1  # a rare training value -> c=other


@pytest.mark.slow
def test_a_table_with_text_and_holes_trains_from_the_command_line_alone(tmp_path: Path) -> None:
    """data=csv data.path=... data.label_column=... and nothing else, as well as a careful sklearn pipeline."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from trainkit.config import compose
    from trainkit.data.build import split_indices
    from trainkit.run import train

    rows = titanic_like(tmp_path / "titanic.csv")
    torch.set_num_threads(1)
    summary = train(compose(["data=csv", f"data.path={tmp_path / 'titanic.csv'}", "data.label_column=Survived",
                             "trainer.epochs=15", "trainer.progress=none", "device=cpu"]), tmp_path / "run")
    train_idx, _, test_idx = split_indices(len(rows), [0.1, 0.2], 0)  # the run's split (seed 0)
    cols = {h: i for i, h in enumerate(HEADER)}

    def frame(idx: torch.Tensor) -> np.ndarray:
        return np.array([[np.nan if rows[i][cols[h]] == "" else rows[i][cols[h]] for h in HEADER] for i in idx.tolist()], dtype=object)

    nums, cats = [cols[h] for h in ("PassengerId", "Pclass", "Age", "Fare")], [cols[h] for h in ("Sex", "Embarked", "Alone")]
    pipe = make_pipeline(ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), nums),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")), cats),
    ]), LogisticRegression(max_iter=1000))
    y = np.array([int(r[-1]) for r in rows])
    tr, te = frame(train_idx), frame(test_idx)
    pipe.fit(tr, y[train_idx.numpy()])
    hand = float((pipe.predict(te) == y[test_idx.numpy()]).mean())
    ours = float(summary["test_acc"])
    assert hand > 0.8, hand
    assert ours >= hand - 0.03, (ours, hand)


def test_statistics_come_from_the_training_rows_only_and_reach_the_checkpoint(tmp_path: Path) -> None:
    from trainkit.config import compose
    from trainkit.data.build import build_data, split_indices

    rows = titanic_like(tmp_path / "t.csv", n=200)
    cfg = compose(["data=csv", f"data.path={tmp_path / 't.csv'}", "data.label_column=Survived", "device=cpu"])
    data = build_data(cfg, torch.device("cpu"))
    pre = data.meta["preprocessing"]
    train_idx = split_indices(len(rows), [0.1, 0.2], 0)[0].tolist()
    fares = torch.tensor([float(rows[i][5]) for i in train_idx], dtype=torch.float64)
    fare = next(c for c in pre["columns"] if c["name"] == "Fare")
    assert fare["mean"] == pytest.approx(float(fares.mean())) and fare["fill"] == pytest.approx(float(fares.quantile(0.5)))
    assert fare["mean"] != pytest.approx(sum(float(r[5]) for r in rows) / len(rows))
    # transform() on the test rows as dicts gives exactly the test split's inputs (what predict will do)
    test_idx = split_indices(len(rows), [0.1, 0.2], 0)[2].tolist()
    x = tables.transform([dict(zip(HEADER, rows[i], strict=True)) for i in test_idx], pre)
    assert torch.equal(x, data.test.tensors[0].cpu())
    torch.save({"data_meta": data.meta}, tmp_path / "m.pt")
    assert torch.load(tmp_path / "m.pt", weights_only=True)["data_meta"] == data.meta


@pytest.mark.slow
def test_eval_encodes_other_rows_with_the_stored_preprocessing(tmp_path: Path) -> None:
    from trainkit import api
    from trainkit.config import compose
    from trainkit.data.build import build_data, split_indices
    from trainkit.run import train

    rows = titanic_like(tmp_path / "a.csv", n=200)
    torch.set_num_threads(1)
    train(compose(["data=csv", f"data.path={tmp_path / 'a.csv'}", "data.label_column=Survived", "trainer.epochs=1",
                   "trainer.progress=none", "device=cpu"]), tmp_path / "run")
    meta = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)["data_meta"]
    shifted = [[*r[:5], str(float(r[5]) * 3), *r[6:]] for r in rows]  # other fares: a refit would scale them away
    with (tmp_path / "b.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([HEADER, *shifted])
    cfg = compose(["data=csv", f"data.path={tmp_path / 'b.csv'}", "data.label_column=Survived", "device=cpu"])
    data = build_data(cfg, torch.device("cpu"), fitted=meta)
    assert data.meta["preprocessing"] == meta["preprocessing"]
    test_idx = split_indices(len(rows), [0.1, 0.2], 0)[2].tolist()
    expected = tables.transform([dict(zip(HEADER, shifted[i], strict=True)) for i in test_idx], meta["preprocessing"])
    assert torch.equal(data.test.tensors[0].cpu(), expected)
    assert not torch.equal(build_data(cfg, torch.device("cpu")).test.tensors[0].cpu(), expected)  # refitted: other numbers
    result = api.evaluate(str(tmp_path / "run" / "checkpoints" / "best.pt"), [f"data.path={tmp_path / 'b.csv'}"])
    assert result["samples"] == 40 and 0.0 <= result["test_acc"] <= 1.0


def test_all_number_tables_are_used_as_before(tmp_path: Path) -> None:
    from trainkit.data.files import csv as read_csv

    (tmp_path / "n.csv").write_text("a,b,label\n1,2.5,0\n3,4,1\n5,6,0\n")
    ds = read_csv(str(tmp_path / "n.csv"))
    assert ds.tensors[0].tolist() == [[1.0, 2.5], [3.0, 4.0], [5.0, 6.0]]
    pre = tables.fit_numbers(ds.feature_names, ds.tensors[0])
    assert torch.equal(tables.transform({"a": [1, 3, 5], "b": [2.5, 4, 6]}, pre), ds.tensors[0])


def test_parquet_reads_like_csv(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from trainkit.data.files import parquet

    frame = pd.DataFrame({"x": [1.0, None, 3.0, 4.0], "kind": ["a", "b", None, "a"], "label": [0, 1, 0, 1]})
    frame.to_parquet(tmp_path / "t.parquet")
    out = parquet(str(tmp_path / "t.parquet"))
    pre = out["table"].fit(range(4))
    assert pre["features"] == ["x", "x=missing", "kind=a", "kind=b", "kind=missing", "kind=other"]
    assert out["train"].tensors[1].tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize(("extra", "words"), [
    (["data.columns={nope: numeric}"], "data.columns names 'nope', which is not a feature column"),
    (["data.columns={Age: number}"], "data.columns.Age=number is not a column type; use one of: numeric, categorical"),
])
def test_bad_columns_are_refused_before_the_run(tmp_path, capsys, monkeypatch, extra, words) -> None:
    from test_bad_input import _refuse

    data = tmp_path.parent / f"{tmp_path.name}_t.csv"
    titanic_like(data, n=60)
    assert words in _refuse(["data=csv", f"data.path={data}", "data.label_column=Survived", *extra], tmp_path, capsys, monkeypatch)


def test_text_in_a_column_said_numeric_is_named_with_the_fix(tmp_path: Path) -> None:
    from trainkit.config import compose
    from trainkit.data.build import build_data
    from trainkit.errors import DataError

    titanic_like(tmp_path / "t.csv", n=60)
    cfg = compose(["data=csv", f"data.path={tmp_path / 't.csv'}", "data.label_column=Survived", "data.columns={Sex: numeric}"])
    with pytest.raises(DataError, match=r"column 'Sex' is numeric but row \d+ of it holds text; .* data.columns.Sex=categorical$"):
        build_data(cfg, torch.device("cpu"))
