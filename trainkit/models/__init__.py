"""Built-in models; any importable nn.Module works too through `model._target_`."""

from trainkit.models.extra import CRNN, EmbeddingBag, EmbeddingNet, Linear, resnet18
from trainkit.models.init import apply_init
from trainkit.models.named import timm_model, torchvision_model
from trainkit.models.nets import CNN, MLP
from trainkit.models.sequential import build_sequential

__all__ = [
    "CNN", "CRNN", "MLP", "EmbeddingBag", "EmbeddingNet", "Linear", "apply_init", "build_sequential", "resnet18",
    "timm_model", "torchvision_model",
]
