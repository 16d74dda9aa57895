"""Build modules without drawing random initial weights, for a load that overwrites every tensor.

`AudioFlamingo.from_pretrained` builds the model, then loads it strictly: every parameter is read
from a file, so the random draws of each layer's `reset_parameters` are thrown away. For the v2
model (135 M LM parameters) they were about 0.5 s of a 2-core cold start. transformers does the
same for its `from_pretrained` (`no_init_weights`).
"""

from __future__ import annotations

import contextlib

from torch.nn import init

# The random initialisers layers call from reset_parameters; constant fills (ones_, zeros_) stay.
RANDOM_INITS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "xavier_uniform_",
    "xavier_normal_",
    "orthogonal_",
)


@contextlib.contextmanager
def no_random_init():
    """Within: torch.nn.init's random initialisers leave tensors as they are (uninitialised)."""
    saved = {name: getattr(init, name) for name in RANDOM_INITS}
    try:
        for name in RANDOM_INITS:
            setattr(init, name, _keep)
        yield
    finally:
        for name, fn in saved.items():
            setattr(init, name, fn)


def _keep(tensor, *args, **kwargs):
    return tensor
