"""The hand-written training script `whole_process.py` measures `trainkit train` against.

    python benchmarks/hand_train.py --data digits --epochs 1 --out DIR
    python benchmarks/hand_train.py --data FILE.pt --hidden 256 --epochs 1 --out DIR

What a careful user writes for the same run, with the same outputs: a seeded split (val 10%, test
20%), an MLP, SGD (lr 0.1, momentum 0.9), batch 64; per epoch a validation pass, a metrics row and a
checkpoint (best copied when val accuracy improves); then the best weights on the test split: loss,
accuracy, top-5, macro F1/precision/recall, per-class accuracy and the confusion matrix, written as
JSON. It prints `ready` when set up and one `epoch N` line per epoch (whole_process.py times those).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="digits", help="digits, or a torch.save file holding x and y")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(0)
    if args.data == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
        y = torch.tensor(d.target, dtype=torch.long)
    else:
        blob = torch.load(args.data, weights_only=True)
        x, y = blob["x"].float(), blob["y"].long()
    n = len(x)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    n_val, n_test = int(0.1 * n), int(0.2 * n)
    val_i, test_i, train_i = perm[:n_val], perm[n_val:n_val + n_test], perm[n_val + n_test:]
    xt, yt = x[train_i], y[train_i]
    classes = int(y.max()) + 1
    model = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), args.hidden), nn.ReLU(),
                          nn.Linear(args.hidden, classes))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    out = Path(args.out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)

    @torch.inference_mode()
    def evaluate(idx: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        model.eval()
        logits = torch.cat([model(x[idx[i:i + 512]]) for i in range(0, len(idx), 512)])
        model.train()
        target = y[idx]
        return float(F.cross_entropy(logits, target)), logits, target

    print("ready", flush=True)
    best, rows = -1.0, []
    for epoch in range(args.epochs):
        order = torch.randperm(len(xt))
        total, seen = 0.0, 0
        for i in range(0, len(xt), 64):
            b = order[i:i + 64]
            loss = F.cross_entropy(model(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(b)
            seen += len(b)
        val_loss, logits, target = evaluate(val_i)
        val_acc = float((logits.argmax(1) == target).float().mean())
        rows.append({"epoch": epoch + 1, "train_loss": total / seen, "val_loss": val_loss, "val_acc": val_acc})
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1},
                   out / "checkpoints" / "last.pt")
        if val_acc > best:
            best = val_acc
            shutil.copyfile(out / "checkpoints" / "last.pt", out / "checkpoints" / "best.pt")
        print(f"epoch {epoch + 1}, loss {total / seen:.4f}, val loss {val_loss:.4f}, val acc {val_acc:.3f}", flush=True)
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    model.load_state_dict(torch.load(out / "checkpoints" / "best.pt", weights_only=True)["model"])
    test_loss, logits, target = evaluate(test_i)
    pred = logits.argmax(1)
    cm = torch.bincount(target * classes + pred, minlength=classes * classes).reshape(classes, classes)
    tp, support, predicted = cm.diagonal().double(), cm.sum(1).double(), cm.sum(0).double()
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), 0.0)
    recall = torch.where(support > 0, tp / support.clamp(min=1), 0.0)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0)
    top5 = (logits.topk(5, dim=1).indices == target[:, None]).any(1).double().mean()
    report = {"test_loss": test_loss, "test_acc": float((pred == target).double().mean()),
              "test_top5_acc": float(top5), "test_f1_macro": float(f1.mean()),
              "test_precision_macro": float(precision.mean()), "test_recall_macro": float(recall.mean()),
              "per_class": recall.tolist(), "confusion_matrix": cm.tolist()}
    (out / "test_report.json").write_text(json.dumps(report, indent=2))
    print(f"test acc {report['test_acc']:.4f}", flush=True)


if __name__ == "__main__":
    main()
