"""Early-bird tickets: stop looking for a ticket once the mask drawn from the training weights stops moving.

Source: H. You et al., "Drawing Early-Bird Tickets: Towards More Efficient Training of Deep
Networks", ICLR 2020 (arXiv:1909.11957), and the authors' code (GATECH-EIC/Early-Bird-Tickets,
main.py, class EarlyBird). Channels are ranked as in network slimming: Z. Liu et al., "Learning
Efficient Convolutional Networks through Network Slimming", ICCV 2017. Attention heads and
feed-forward neurons of a transformer as in X. Chen et al., "EarlyBERT: Efficient BERT Training via
Early-bird Lottery Tickets", ACL 2021 (arXiv:2101.00063).

What the sources fix, and what is checked here:

- Mask distance: the normalised Hamming distance between two ticket masks, the fraction of
  entries where they differ. The authors' code takes it over the concatenated channel mask of all
  BatchNorm2d layers (1 - fraction of equal entries); `hamming` takes it over any dict of bool
  tensors, all layers together.
- Stopping rule: the authors' README draws the ticket once "the last five recorded mask
  distances" are all smaller than a threshold (0.1 in the code; the paper's epsilon). The code
  keeps a FIFO queue of the last 5 masks (`epoch_keep=5`) and fires when the distances from the
  newest mask to each of the 4 older ones are all <= 0.1; it draws a mask at the start of every
  epoch, epoch 0 (the initialisation) included.
- Channel scores: |gamma| of the scaling factors of every BatchNorm2d, one threshold over all
  layers (the code keeps |gamma| > the sorted value at int(channels * prune ratio), one channel
  fewer than the ratio when there are no ties), trained with the L1 penalty s * sum |gamma|
  (s = 1e-4 in their code, applied as the subgradient s * sign(gamma): what `lth.training.features.slimming_penalty`
  gives autograd).
- Transformers (EarlyBERT): the structured units are each layer's self-attention heads and the
  intermediate neurons of its feed-forward sub-layer. EarlyBERT puts a learnable scalar coefficient
  on each head's output and each intermediate neuron, trains the coefficients with an L1 penalty,
  prunes the units of smallest coefficient, and draws the ticket when the normalised Hamming
  distance between successive unit masks stays below a threshold, as early-bird does with channels.

Choices made here:

1. `Detector(window, threshold)` fires at the first mask whose distances to each of the previous
   `window` masks are all strictly below `threshold` (the paper's "smaller than"). window=5 compares
   the new mask with 5 earlier ones (6 masks held); window=4 is exactly the authors' code (5 masks
   held), except that it fires at a distance of exactly 0.1 and this does not. It fires once;
   later masks are still measured, so the table of distances covers the whole run.
2. `EarlyBird` draws every `every` iterations from t = every on, not at t = 0: a ticket that has
   not trained at all is not early-bird's question, and the initial masks would sit in the window.
   Iterations are the repository's unit (lth.training); every = iterations per epoch is the paper's.
3. Unstructured (default): the magnitude mask of lth.pruning.select.keep_globally, keeping
   round(density * prunable weights) of the alive weights with at least one per layer, ties broken
   by position; the distance is over these weight masks. This is early-bird's rule on the masks
   that lottery-ticket experiments here use, not the paper's (structured) setting.
4. Structured (the paper's; a model without `units()`, else choice 8): `select_channels` keeps
   exactly round(density * channels) BatchNorm channels by |gamma| over all layers, at least one
   per layer (the layer's largest; the authors' resprune.py keeps its first channel in a layer the
   threshold empties), ties by position; `density` counts channels here, not weights. Only
   BatchNorms fed by a conv are ranked (all of them in lth.models; the authors rank every
   BatchNorm2d). The distance is over these channel masks, as in the authors' code; the ticket is
   `channel_mask`'s weight mask drawn at the same time.
5. A BatchNorm belongs to the nearest Conv2d before it in `named_modules()` order whose out_channels
   equal its num_features and that no other BatchNorm has claimed; a BatchNorm with none is not
   ranked. That is true of every model of lth.models (ResNet-20's 1x1 shortcut convs included) and
   is checked against the traced dataflow (torch.fx) whenever the consumers are traced (choice 6):
   a model where module order lies is refused rather than mis-masked.
6. Removing a channel: the mask zeros the conv's filter (and its bias when the mask has biases).
   The channel then still emits its BatchNorm shift beta, a constant (BatchNorm parameters are not
   prunable here; the authors' pre-pruning zeroes gamma and beta as well). Where every use of the
   channel, through ReLUs and pooling, is a Conv2d of the mask, the matching input channels of those
   convs are zeroed as well, so the channel is gone exactly as slimming removes it (VGG's chains,
   ResNet's inner block channels). Where it also reaches a residual sum, a flatten or a Linear,
   the inputs are left alone and the constant stays as a learned per-channel offset; found by a
   torch.fx trace of the model, once. Linear layers are never pruned.
7. The observer only reads: |w|, |gamma| and unit norms of detached tensors, no forward pass, no RNG; the
   model's parameters, buffers, grads and mode stay bitwise as they were, and so does training.
   Iterations at or before the last draw are skipped (a resume within the same process redoes them
   with the same weights); the observer has no saved state, so a run resumed in a new process
   starts its window afresh.
8. Structured on a transformer (EarlyBERT's setting): a model with a `units()` method
   (lth.models.encoder) is pruned by its units, each block's attention heads and feed-forward neurons
   (each a set of parameter slices, lth.models.encoder.Unit); BatchNorm channels are then not looked
   for. Deviation from EarlyBERT: a unit is scored by the L2 norm of its own parameters (a head: its
   q, k, v rows and biases and its proj columns; a neuron: its fc1 row and bias and its fc2 column;
   weights the mask has pruned count as zero), not by a learned coefficient. Here only
   Linear/Conv2d/BatchNorm2d carry parameters and the observer must leave training untouched, so no
   coefficient, gate or penalty is added; the norm bounds what the unit can contribute (its proj or
   fc2 columns scale what it writes back, its v rows or fc1 row what it carries) and needs nothing
   trained. It is not the same ranking: a coefficient trained under L1 pressure learns how much the
   loss needs the unit, the norm reads only its size (and mixes in q and k, which set where a head
   looks, not how much it writes).
9. Unit selection: per kind separately (heads; neurons), max(round(density * units of that kind),
   blocks) units are kept over all blocks by one ranking, at least one per block and kind (that
   block's best: a block never loses all its heads or all its neurons; with few heads a ticket's
   density would otherwise empty blocks; select_channels refuses such a density instead), ties
   broken by position as in lth.pruning.select (the earlier unit goes first). `density` counts
   units of each kind here, not weights: the analysis hands over the IMP ticket's weight density,
   and a ticket at 20 % of the weights keeps 20 % of the heads and 20 % of the neurons. The
   distance is over the unit masks (one entry per head and per neuron, all blocks and both kinds
   together). The weight mask zeros every slice of a dropped unit
   that the given mask covers, intersected with that mask; proj.bias and fc2.bias belong to no unit,
   and the embeddings, positions and output layer are never pruned, so the weight mask keeps more
   than `density` of the weights. Zeroing the proj (fc2) columns alone removes a unit's output
   exactly, so biases left out of the mask (biases not pruned) do not bring it back. A unit is ranked
   only when the mask covers all its weight matrices (an excluded layer keeps its units whole).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lth.core.errors import LTHError
from lth.pruning.masks import Mask, layer_kinds
from lth.pruning.select import keep_globally

# channel-wise operations a removed channel may pass through on its way to a conv (choice 6)
_PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.MaxPool2d, nn.AvgPool2d, nn.Identity, nn.Dropout, nn.Dropout2d)
_PASS_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.max_pool2d, F.avg_pool2d, F.dropout}
_PASS_METHODS = {"relu", "relu_"}


def _check_fraction(value, what: str, closed: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (0.0 < value <= 1.0 if closed else 0.0 < value < 1.0):
        raise LTHError(f"early-bird {what} must be in {'(0, 1]' if closed else '(0, 1)'}, got {value!r}")
    return float(value)


def _flat(mask: Mapping[str, torch.Tensor]) -> tuple[tuple, torch.Tensor]:
    """(layout, all entries as one flat CPU bool tensor): masks are compared as a whole."""
    layout = tuple((name, tuple(m.shape)) for name, m in mask.items())
    flat = torch.cat([m.detach().reshape(-1).to("cpu", torch.bool) for m in mask.values()]) if mask else \
        torch.zeros(0, dtype=torch.bool)
    return layout, flat


def hamming(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """Fraction of entries, over all layers together, where masks a and b differ (You et al. 2020)."""
    la, fa = _flat(a)
    lb, fb = _flat(b)
    if la != lb:
        differ = sorted(set(la) ^ set(lb))[:4] or "the order of their layers"
        raise LTHError(f"mask distance: the masks cover different layers or shapes: {differ}")
    return int((fa != fb).sum()) / fa.numel() if fa.numel() else 0.0


class Detector:
    """Declares the early-bird ticket when a new mask is within `threshold` of each of the last `window`.

    Masks are kept as flat CPU bool copies (window of them). `distances` gets an entry for every mask
    after the first, the max over the previous masks held (fewer than `window` at the start).
    """

    def __init__(self, window: int = 5, threshold: float = 0.1):
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise LTHError(f"early-bird window must be a positive integer, got {window!r}")
        self.window = window
        self.threshold = _check_fraction(threshold, "threshold")
        self._queue: deque[tuple[int, tuple, torch.Tensor]] = deque(maxlen=window)  # the previous masks
        self.fired_at: int | None = None
        self.distances: list[tuple[int, float]] = []  # (iteration, max distance to the masks before it)

    def add(self, iteration: int, mask: Mapping[str, torch.Tensor]) -> bool:
        """Record the mask of `iteration`; True only the first time the stopping rule holds."""
        layout, flat = _flat(mask)
        if self._queue and iteration <= self._queue[-1][0]:
            raise LTHError(f"early-bird: mask of iteration {iteration} added after iteration {self._queue[-1][0]}")
        if self._queue and layout != self._queue[-1][1]:
            raise LTHError("early-bird: the new mask covers other layers or shapes than the previous ones")
        fired = False
        if self._queue:
            total = flat.numel()
            worst = max((int((flat != old).sum()) / total if total else 0.0) for _, _, old in self._queue)
            self.distances.append((iteration, worst))
            if self.fired_at is None and len(self._queue) == self.window and worst < self.threshold:
                self.fired_at, fired = iteration, True
        self._queue.append((iteration, layout, flat))
        return fired


@dataclass
class ChannelGroup:
    """One prunable set of channels: a BatchNorm, the conv it normalises, the convs reading it alone."""

    bn: str  # module name of the BatchNorm2d
    conv: str  # module name of the Conv2d feeding it
    readers: list[str] = field(default_factory=list)  # convs whose input channels are exactly these


def _pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(bn, conv) by module order (choice 5): the nearest unclaimed Conv2d before it with matching width."""
    pairs, convs = [], []  # convs: (name, module) seen so far and not yet claimed
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            convs.append((name, m))
        elif isinstance(m, nn.BatchNorm2d):
            for i in range(len(convs) - 1, -1, -1):
                if convs[i][1].out_channels == m.num_features:
                    pairs.append((name, convs.pop(i)[0]))
                    break
    return pairs


def _passes(node, modules) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], _PASS_MODULES)
    if node.op == "call_function":
        return node.target in _PASS_FUNCTIONS
    return node.op == "call_method" and node.target in _PASS_METHODS


def _readers(node, modules, width: int) -> list[str] | None:
    """Convs that read this node's channels and nothing else does (through channel-wise ops); None if
    anything else uses them."""
    found, todo, seen = [], list(node.users), set()
    while todo:
        user = todo.pop()
        if user in seen:
            continue
        seen.add(user)
        target = modules.get(user.target) if user.op == "call_module" else None
        if isinstance(target, nn.Conv2d) and target.groups == 1 and target.in_channels == width:
            found.append(user.target)
        elif _passes(user, modules):
            todo.extend(user.users)
        else:
            return None
    return sorted(set(found))


def channel_groups(model: nn.Module, trace: bool = True) -> list[ChannelGroup]:
    """The BatchNorm channels that can be ranked, with the conv before each and (traced) the convs after.

    Refuses a model with no BatchNorm after a convolution, and one where module order pairs a
    BatchNorm with a conv that does not feed it.
    """
    pairs = _pairs(model)
    if not pairs:
        raise LTHError(f"channel masks need BatchNorm layers after convolutions; model {type(model).__name__} "
                       f"has none")
    groups = [ChannelGroup(bn, conv) for bn, conv in pairs]
    if not trace:
        return groups
    from torch import fx

    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as e:  # noqa: BLE001 -- any tracing failure means the same thing here
        raise LTHError(f"channel masks: model {type(model).__name__} cannot be traced to find the convolutions "
                       f"reading each channel ({type(e).__name__}: {e}); use trace=False to zero filters only"
                       ) from None
    modules = dict(model.named_modules())
    nodes = {n.target: n for n in graph.nodes if n.op == "call_module"}
    for g in groups:
        node = nodes.get(g.bn)
        source = node.args[0] if node is not None and node.args else None
        if source is None or getattr(source, "op", None) != "call_module" or source.target != g.conv:
            raise LTHError(f"channel masks: in model {type(model).__name__}, BatchNorm '{g.bn}' does not read "
                           f"'{g.conv}', the convolution before it in module order")
        g.readers = _readers(node, modules, modules[g.bn].num_features) or []
    return groups


def select_channels(model: nn.Module, density: float, groups: Iterable[ChannelGroup] | None = None) -> Mask:
    """BatchNorm name -> bool per channel: the round(density * channels) largest |gamma| over all layers,
    at least one per layer (network slimming, Liu et al. 2017); ties broken by position."""
    density = _check_fraction(density, "density", closed=True)
    groups = list(groups) if groups is not None else channel_groups(model, trace=False)
    modules = dict(model.named_modules())
    scores = {g.bn: modules[g.bn].weight.detach().abs().to("cpu", torch.float64) for g in groups}
    total = sum(s.numel() for s in scores.values())
    keep = round(density * total)
    if keep < len(scores):
        raise LTHError(f"early-bird: keeping {keep} of {total} channels (density {density:g}) leaves some of the "
                       f"{len(scores)} BatchNorm layers empty: raise the density")
    alive = {name: torch.ones(s.shape, dtype=torch.bool) for name, s in scores.items()}
    return keep_globally(scores, alive, keep, min_per_layer=1)


def weights_of_channels(model: nn.Module, keep: Mapping[str, torch.Tensor], groups: Iterable[ChannelGroup],
                        names: Iterable[str]) -> Mask:
    """The weight mask over parameters `names` that removes the channels `keep` drops (choice 6)."""
    params = dict(model.named_parameters())
    mask = {n: torch.ones(params[n].shape, dtype=torch.bool) for n in names}
    for g in groups:
        dropped = ~keep[g.bn].cpu()
        for param in (f"{g.conv}.weight", f"{g.conv}.bias"):
            if param in mask:
                mask[param][dropped] = False
        if g.readers and all(f"{r}.weight" in mask for r in g.readers):
            for r in g.readers:
                mask[f"{r}.weight"][:, dropped] = False
    return mask


def channel_mask(model: nn.Module, density: float, exclude: Iterable[str] = (), biases: bool = False,
                 trace: bool = True) -> Mask:
    """Network-slimming channel pruning as a weight mask over the prunable parameters (lth.pruning.masks).

    Keeps the top `density` fraction of the BatchNorm channels that follow a convolution, ranked by
    |gamma| over all layers with at least one per layer; zeros the filters of the dropped channels
    and, where only convolutions read them, those convolutions' input channels (module docstring,
    choices 4-6). `exclude` as in lth.pruning.masks.layer_kinds: a BatchNorm whose conv is excluded is not
    ranked (its filters cannot be zeroed). trace=False zeros filters only, without torch.fx.
    """
    names = list(layer_kinds(model, exclude, biases))
    groups = [g for g in channel_groups(model, trace) if f"{g.conv}.weight" in names]
    if not groups:
        raise LTHError(f"channel masks: every convolution followed by BatchNorm in model {type(model).__name__} "
                       f"is excluded from pruning")
    return weights_of_channels(model, select_channels(model, density, groups), groups, names)


def _unit_key(unit) -> str:
    """The unit mask's entry of a unit: one bool tensor per block and kind, e.g. "blocks.0.heads"."""
    return f"{unit.layer}.{unit.kind}s" if unit.layer else f"{unit.kind}s"


def ranked_units(model: nn.Module, names: Iterable[str]) -> list:
    """The units of `model.units()` (choice 8) whose weight matrices are all among `names` (choice 9)."""
    names, params = set(names), dict(model.named_parameters())
    units = list(model.units())
    for u in units:
        for name, dim, start, stop in u.slices:
            p = params.get(name)
            if p is None or not 0 <= dim < p.dim() or not 0 <= start < stop <= p.shape[dim]:
                raise LTHError(f"early-bird: unit {u.kind} {u.index} of '{u.layer}' names slice {start}:{stop} of "
                               f"dimension {dim} of '{name}', which model {type(model).__name__} does not have")
    return [u for u in units if all(n in names for n, *_ in u.slices if params[n].dim() > 1)]


def unit_scores(model: nn.Module, units: Iterable, mask: Mapping[str, torch.Tensor] | None = None
                ) -> dict[str, torch.Tensor]:
    """Unit-mask entry -> the L2 norm of each unit's parameters (choice 8), float64 on CPU, in the order
    of `units`; entries that `mask` has pruned count as zero."""
    units = list(units)
    params = dict(model.named_parameters())
    squares = torch.zeros(len(units), dtype=torch.float64)
    slices: dict[tuple[str, int, int], list[tuple[int, int]]] = {}  # (name, dim, width) -> (unit, start)
    for i, u in enumerate(units):
        for name, dim, start, stop in u.slices:
            slices.setdefault((name, dim, stop - start), []).append((i, start))
    lines: dict[tuple[str, int], torch.Tensor] = {}
    for (name, dim, width), found in slices.items():
        if (name, dim) not in lines:  # squares summed over every dimension but `dim`
            w = params[name].detach().to("cpu", torch.float64)
            if mask is not None and name in mask:
                w = w * mask[name].to("cpu", torch.float64)
            lines[name, dim] = w.square().sum([d for d in range(w.dim()) if d != dim]) if w.dim() > 1 else w.square()
        ids = torch.tensor([i for i, _ in found])
        starts = torch.tensor([a for _, a in found])
        squares.index_add_(0, ids, lines[name, dim][starts[:, None] + torch.arange(width)].sum(1))
    scores: dict[str, list[int]] = {}
    for i, u in enumerate(units):
        scores.setdefault(_unit_key(u), []).append(i)
    return {key: squares[ids].sqrt() for key, ids in scores.items()}


def select_units(model: nn.Module, density: float, units: Iterable,
                 mask: Mapping[str, torch.Tensor] | None = None) -> Mask:
    """Unit-mask entry ("<block>.<kind>s") -> bool per unit: for each kind, the max(round(density * units),
    blocks) of largest norm over all blocks, at least one per block (choice 9); ties by position."""
    density = _check_fraction(density, "density", closed=True)
    units = list(units)
    if not units:
        raise LTHError("early-bird: no units to rank")
    scores = unit_scores(model, units, mask)
    kinds = {_unit_key(u): u.kind for u in units}
    keep: Mask = {}
    for kind in dict.fromkeys(kinds.values()):
        part = {key: s for key, s in scores.items() if kinds[key] == kind}
        count = max(round(density * sum(s.numel() for s in part.values())), len(part))
        alive = {key: torch.ones(s.shape, dtype=torch.bool) for key, s in part.items()}
        keep.update(keep_globally(part, alive, count, min_per_layer=1))
    return {key: keep[key] for key in scores}


def weights_of_units(keep: Mapping[str, torch.Tensor], units: Iterable, mask: Mapping[str, torch.Tensor]) -> Mask:
    """The weight mask over `mask`'s parameters that removes every unit `keep` drops (choice 9),
    intersected with `mask`."""
    out = {n: m.detach().to("cpu", torch.bool).clone() for n, m in mask.items()}
    position: dict[str, int] = {}
    for u in units:
        key = _unit_key(u)
        i = position[key] = position.get(key, -1) + 1
        if bool(keep[key][i]):
            continue
        for name, dim, start, stop in u.slices:
            if name in out:
                out[name].narrow(dim, start, stop - start).fill_(False)
    return out


def unit_mask(model: nn.Module, density: float, exclude: Iterable[str] = (), biases: bool = False) -> Mask:
    """EarlyBERT-style structured pruning of a model with `units()` as a weight mask over the prunable
    parameters (lth.pruning.masks): heads and feed-forward neurons by the norm of their parameters (choices 8-9)."""
    params = dict(model.named_parameters())
    full = {n: torch.ones(params[n].shape, dtype=torch.bool) for n in layer_kinds(model, exclude, biases)}
    units = ranked_units(model, full)
    if not units:
        raise LTHError(f"unit masks: every unit of model {type(model).__name__} has a weight excluded from pruning")
    return weights_of_units(select_units(model, density, units, full), units, full)


class EarlyBird:
    """The `observe` hook of lth.training.loop.train that watches for the early-bird ticket (module docstring).

    After training, `ticket` is the weight mask drawn when the detector fired (None if it never did),
    `fired_at` its iteration, `distances` the (iteration, max distance) of every draw after the first,
    and `last` / `last_at` the latest mask drawn. `mask` names the prunable parameters; weights it
    has already pruned stay pruned.
    """

    def __init__(self, model: nn.Module, mask: Mask, density: float, every: int, window: int = 5,
                 threshold: float = 0.1, structured: bool = False):
        self.density = _check_fraction(density, "density", closed=True)
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise LTHError(f"early-bird: every must be a positive integer, got {every!r}")
        params = dict(model.named_parameters())
        for name, m in mask.items():
            if name not in params or tuple(params[name].shape) != tuple(m.shape):
                raise LTHError(f"early-bird: mask layer '{name}' does not fit the model")
        self.model, self.every, self.structured = model, every, bool(structured)
        self.mask = {n: m.detach().to("cpu", torch.bool) for n, m in mask.items()}
        self.total = sum(m.numel() for m in self.mask.values())
        self.keep = round(self.density * self.total)
        if not structured and self.keep > sum(int(m.sum()) for m in self.mask.values()):
            raise LTHError(f"early-bird: density {density:g} keeps {self.keep} weights, more than the mask has alive")
        self.units = None
        if structured and callable(getattr(model, "units", None)):  # a transformer's heads and neurons
            self.units = ranked_units(model, self.mask)
            if not self.units:
                raise LTHError(f"early-bird: no head or neuron of model {type(model).__name__} has all its weights "
                               f"in the mask")
        elif structured:
            self.groups = [g for g in channel_groups(model) if f"{g.conv}.weight" in self.mask]
            if not self.groups:
                raise LTHError(f"early-bird: no convolution followed by BatchNorm is in the mask of model "
                               f"{type(model).__name__}")
            select_channels(model, self.density, self.groups)  # refuse a density too low now, not mid-run
        self.detector = Detector(window, threshold)
        self.ticket: Mask | None = None
        self.last: Mask | None = None
        self.last_at: int | None = None

    @property
    def fired_at(self) -> int | None:
        return self.detector.fired_at

    @property
    def distances(self) -> list[tuple[int, float]]:
        return self.detector.distances

    @torch.no_grad()
    def draw(self) -> tuple[Mask, Mask]:
        """(the mask the detector compares, the weight mask) at the current weights."""
        if self.units is not None:
            keep = select_units(self.model, self.density, self.units, self.mask)
            return keep, weights_of_units(keep, self.units, self.mask)
        if self.structured:
            keep = select_channels(self.model, self.density, self.groups)
            weights = weights_of_channels(self.model, keep, self.groups, self.mask)
            return keep, {n: w & self.mask[n] for n, w in weights.items()}
        params = dict(self.model.named_parameters())
        scores = {n: params[n].detach().abs().to("cpu", torch.float64) for n in self.mask}
        weights = keep_globally(scores, self.mask, self.keep, min_per_layer=1)
        return weights, weights

    def __call__(self, t: int, x: torch.Tensor, y: torch.Tensor) -> None:
        if t < 1 or t % self.every or (self.last_at is not None and t <= self.last_at):
            return
        compared, weights = self.draw()
        if self.detector.add(t, compared):
            self.ticket = weights
        self.last, self.last_at = weights, t
