"""Built-in models; any importable nn.Module works too through `model._target_`."""

from trainkit.models.init import apply_init
from trainkit.models.nets import CNN, MLP

__all__ = ["CNN", "MLP", "apply_init"]
