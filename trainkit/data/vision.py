"""torchvision datasets (MNIST, Fashion-MNIST, CIFAR-10, ...) with YAML transform lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainkit.errors import DataError


def compose_transforms(specs: Any) -> Any:
    """Build torchvision.transforms.Compose from a list of `_target_` dicts (None: no transform).

    Hydra's recursive instantiate may already have built the items; those are used as they are.
    """
    if not specs:
        return None
    from hydra.utils import instantiate
    from omegaconf import DictConfig
    from torchvision.transforms import Compose

    return Compose([instantiate(s) if isinstance(s, (dict, DictConfig)) else s for s in specs])


def torchvision_dataset(
    name: str,
    root: str = "data",
    download: bool = True,
    train_transforms: Any = None,
    eval_transforms: Any = None,
) -> dict[str, Any]:
    """The train split (with train transforms), an eval view of it, and the official test split.

    The validation split is carved from `train_eval` (same images, eval transforms), so validation
    never sees augmentation.
    """
    import torchvision.datasets as tvd

    cls = getattr(tvd, name, None)
    if cls is None:
        raise DataError(f"torchvision.datasets has no dataset '{name}'; check data.dataset.name")
    root_path = Path(root).expanduser()
    train_tf, eval_tf = compose_transforms(train_transforms), compose_transforms(eval_transforms)
    try:
        train = cls(str(root_path), train=True, transform=train_tf, download=download)
        train_eval = cls(str(root_path), train=True, transform=eval_tf, download=False)
        test = cls(str(root_path), train=False, transform=eval_tf, download=download)
    except RuntimeError as exc:
        why = "data.download=false" if not download else f"download failed: {_short(exc)}"
        raise DataError(
            f"{name} files not found under '{root_path.resolve()}' ({why}); put the dataset's files there "
            f"(torchvision layout: {root_path}/{name}/...), set data.root=DIR, or allow data.download=true with network"
        ) from exc
    except OSError as exc:  # URLError, connection refused: no network
        raise DataError(
            f"{name} could not be downloaded ({_short(exc)}); copy its files to '{root_path.resolve()}' "
            f"(torchvision layout) and run with data.download=false, or set data.root=DIR"
        ) from exc
    return {"train": train, "train_eval": train_eval, "val": None, "test": test}


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
