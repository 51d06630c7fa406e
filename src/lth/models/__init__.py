"""The networks of the lottery-ticket papers, built with a seeded, RNG-isolated initialisation.

Use `build_model`: it constructs the module under a forked global RNG (so PyTorch's own default
initialisation leaves the global state untouched) and then initialises every parameter from
`torch.Generator().manual_seed(seed)` alone, as the source paper / reference code does.
Same seed -> bitwise-identical state_dict, whatever else the process has drawn.

A model is a class with `init_parameters(generator)` in a file of this package, plus its line in
`lth.core.parts.MODELS`. Only nn.Linear, nn.Conv2d and nn.BatchNorm2d carry parameters, and the output
layer is the last nn.Linear in `model.modules()` order: pruning relies on both.

May import lth.core and lth.plan; never a data generator (lth.data).
"""

from __future__ import annotations

import torch
from torch import nn

from lth.core.errors import LTHError
from lth.core.parts import MODELS
from lth.plan.checks import check_model

__all__ = ["MODELS", "build_model", "output_layer_name"]


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def build_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, *, seed: int, init: str = "default", **options
) -> nn.Module:
    """Build model `name` for inputs of `input_shape` (no batch dim), initialised from `seed` only.

    init: "default" (the model's own, its paper's), or one of Ramanujan et al. 2020's for the weights
    of every Linear/Conv2d layer, drawn after the model's own from a generator of their own
    (lth.models.init.WEIGHT_INITS); biases and BatchNorms keep the model's.

    Raises LTHError for an unknown name or option, a bad option value, or an input shape the
    architecture cannot take. Leaves the global torch RNG untouched.
    """
    if name not in MODELS:
        raise LTHError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if not shape or not all(_positive_int(d) for d in shape):
        raise LTHError(
            f"model {name!r}: input_shape must be a non-empty tuple of positive ints, got {input_shape!r}"
        )
    check_model(name, options, shape, where="model")
    if not _positive_int(num_classes):
        raise LTHError(f"model {name!r}: num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise LTHError(f"model {name!r}: seed must be an integer, got {seed!r}")

    # PyTorch's constructors draw their default init from the global RNG: fork it, so the global
    # state is left as it was, then re-initialise every parameter from g. (Building on the meta
    # device instead costs ~1.5 s of lazy imports per process, more than a small training run.)
    part = MODELS[name]
    with torch.random.fork_rng(devices=[]):
        model = part.load()(shape, num_classes, **part.info.get("args", {}), **options)
    model.init_parameters(torch.Generator().manual_seed(seed))
    if init != "default":
        from lth.core.seeding import derive_seed
        from lth.models.init import WEIGHT_INITS

        g = torch.Generator().manual_seed(derive_seed(seed, "init", init))
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                WEIGHT_INITS[init](m, g)
    return model


def output_layer_name(model: nn.Module) -> str:
    """Name of the output layer (the last nn.Linear), e.g. "fc" -> parameters "fc.weight", "fc.bias"."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise LTHError(f"{type(model).__name__} has no nn.Linear output layer")
    return names[-1]
