"""Channel (structured) pruning: whole output channels of a Conv2d, or neurons of a Linear, removed by
the L1 norm of their weights (Li et al. 2017, "Pruning Filters for Efficient ConvNets"), with the
matching inputs of the layers that read them, so that the masked network computes what a physically
smaller one would.

Which layer reads which is found, not declared: the model is traced once (torch.fx) with the shapes of
one batch (ShapeProp), and every tensor whose dimension 1 holds channels is put in a *channel space*:
a Linear/Conv2d makes a new one (its output channels); ReLUs, BatchNorms, poolings, dropout, a mean
over spatial dimensions and `flatten(1)` pass it on (a Linear after `flatten(1)` of C x H x W reads
channel c as its inputs c*H*W ... (c+1)*H*W - 1); an elementwise sum or product of two tensors ties
their spaces into one (a residual connection: channel c of every layer writing the residual stream is
the same channel, removed from all of them or from none). A space can be pruned when it is written
only by prunable layers and read only by prunable Linear/Conv2d layers: anything else that reads it
(the model's output, a layer norm, a concatenation, attention, a reshape, an excluded layer) blocks it,
and its layers keep their channels. The model's input is blocked (inputs are not pruned), and the
output layer's outputs are blocked (it writes the model's output).

Removing channel c of a space zeroes row c of every layer that writes it (its bias too when the mask
covers biases) and the inputs of channel c of every layer that reads it. The removed channel may still
carry a constant (a bias, a BatchNorm shift, through a ReLU or a residual sum), but every reader's
weights on it are zero and nothing mixes channels before a reader, so the output is exactly that of
the smaller network without the channel (tested against one built by hand).

Scores: a channel's score is the sum of the method's scores over its rows' alive weights in every
layer writing it; with `score: magnitude` that is the L1 norm of the filter (Li et al.), and in a
residual stream the sum of the L1 norms of the filters writing it, the group importance of DepGraph
(Fang et al. 2023). The lowest go first, ties by position (the lower channel first).

How many: a one-shot method (`distribution: channels`) keeps the same fraction f of the channels of
every prunable space (at least one), f chosen so that the weight density of the network is nearest
the target (ties: the denser); IMP (`pruning.strategy: channels`) removes `channel_rate` of each
space's alive channels per round, keeping at least one.

Residual networks: mlp1d's hidden units are one residual stream (linear1 and linear2 write it, linear2
and linear3 read it): its neurons are removed from all three. ResNet-20's stages are three residual
streams (the stem, every block's second conv and the stage's 1x1 projection write them) plus each
block's inner channels (its first conv, read by its second: Li et al.'s "first layer of each residual
block"); all are pruned, each stream as one group. Li et al. leave the streams dense; `pruning.exclude`
of the layers writing a stream does the same here (an excluded writer blocks its stream).
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lth.core.errors import LTHError
from lth.pruning.masks import Mask

_PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.BatchNorm1d, nn.BatchNorm2d,
                 nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Identity, nn.Dropout,
                 nn.Dropout2d)
_PASS_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.leaky_relu, F.gelu, torch.tanh, torch.sigmoid, F.max_pool2d,
                   F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.dropout, F.batch_norm}
_PASS_METHODS = {"relu", "relu_", "tanh", "sigmoid", "contiguous", "clone"}
_TIE = {operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul, torch.add, torch.sub,
        torch.mul}
_TIE_METHODS = {"add", "add_", "sub", "mul", "mul_"}


@dataclass
class Space:
    """Channels that are removed together: the layers writing them (rows) and reading them (inputs).

    readers: (module, group): the module reads channel c as its inputs c*group ... (c+1)*group - 1
    (a Conv2d: group 1, its input channel c). blocked: why these channels cannot be removed (None: they can).
    """

    channels: int
    writers: list[str] = field(default_factory=list)
    readers: list[tuple[str, int]] = field(default_factory=list)
    blocked: str | None = None

    def layers(self) -> list[str]:
        return sorted({*self.writers, *(r for r, _ in self.readers)})


class _Spaces:
    """Union-find over channel spaces while the graph is walked."""

    def __init__(self):
        self.parent: list[int] = []
        self.info: list[Space] = []

    def new(self, channels: int, writer: str | None = None, blocked: str | None = None) -> int:
        self.parent.append(len(self.parent))
        self.info.append(Space(channels, [writer] if writer else [], [], blocked))
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def block(self, i: int, why: str) -> None:
        s = self.info[self.find(i)]
        s.blocked = s.blocked or why

    def union(self, a: int, b: int, why: str = "") -> int:
        a, b = self.find(a), self.find(b)
        if a == b:
            return a
        sa, sb = self.info[a], self.info[b]
        self.parent[b] = a
        sa.writers += [w for w in sb.writers if w not in sa.writers]
        sa.readers += [r for r in sb.readers if r not in sa.readers]
        sa.blocked = sa.blocked or sb.blocked
        if sa.channels != sb.channels:
            sa.blocked = sa.blocked or f"{why or 'an operation'} ties {sa.channels} channels to {sb.channels}"
        return a

    def roots(self) -> list[Space]:
        return [self.info[i] for i in range(len(self.parent)) if self.find(i) == i]


def _shape(node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if hasattr(node, "meta") else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _nodes(args) -> list:
    from torch import fx

    out = []
    for a in args:
        if isinstance(a, fx.Node):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out += _nodes(a)
        elif isinstance(a, dict):
            out += _nodes(list(a.values()))
    return out


def _dims(node, ndim: int) -> set[int] | None:
    dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    if dims is None:
        return None
    dims = dims if isinstance(dims, (list, tuple)) else [dims]
    return {d % ndim for d in dims if isinstance(d, int)} if all(isinstance(d, int) for d in dims) else None


def trace(model: nn.Module, input_shape: tuple[int, ...]) -> list[Space]:
    """Every channel space of `model` (module docstring), blocked ones included; LTHError if it cannot be
    traced. The model is copied first: it is left untouched."""
    from torch import fx
    from torch.fx.passes.shape_prop import ShapeProp

    net = copy.deepcopy(model).cpu().eval()
    name = type(model).__name__
    try:
        gm = fx.symbolic_trace(net)
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(2, *input_shape))
    except Exception as e:  # noqa: BLE001 -- any tracing failure means the same thing here
        raise LTHError(f"channels: model {name} cannot be traced to find which layer reads which "
                       f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    modules = dict(gm.named_modules())
    spaces, of = _Spaces(), {}
    wrote: dict[str, int] = {}
    read: dict[str, int] = {}

    def blocked_output(node, why: str) -> None:
        for arg in _nodes(node.args) + _nodes(list(node.kwargs.values())):
            if arg in of:
                spaces.block(of[arg], why)
        shape = _shape(node)
        if shape is not None and len(shape) >= 2:
            of[node] = spaces.new(shape[1], blocked=why)

    for node in gm.graph.nodes:
        shape = _shape(node)
        if node.op == "placeholder":
            of[node] = spaces.new(shape[1] if shape and len(shape) >= 2 else 1, blocked="the model's input")
            continue
        if node.op == "output":
            for arg in _nodes(node.args):
                if arg in of:
                    spaces.block(of[arg], "the model's output")
            continue
        args = [a for a in _nodes(node.args) if a in of]
        if shape is None and getattr(node.target, "__name__", node.target) in ("size", "dim", "getattr", "numel"):
            continue  # a question about the shape reads no channel
        if node.op == "call_module":
            m = modules[node.target]
            if isinstance(m, (nn.Linear, nn.Conv2d)) and args:
                src, src_shape = args[0], _shape(args[0])
                layer, why = node.target, None
                if isinstance(m, nn.Conv2d) and m.groups != 1:
                    why = f"'{layer}' is a grouped convolution"
                elif isinstance(m, nn.Linear) and (src_shape is None or len(src_shape) != 2):
                    why = f"'{layer}' is a Linear applied to a {len(src_shape or ())}-d tensor (a sequence)"
                if why:
                    spaces.block(of[src], why)
                    out = m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
                    of[node] = spaces.new(out, writer=layer, blocked=why)
                    continue
                c = spaces.info[spaces.find(of[src])].channels
                inputs = m.in_channels if isinstance(m, nn.Conv2d) else m.in_features
                if inputs % c or (isinstance(m, nn.Conv2d) and inputs != c):
                    spaces.block(of[src], f"'{layer}' reads {inputs} inputs from {c} channels")
                    group = 1
                else:
                    group = inputs // c
                root = spaces.find(of[src])
                if (layer, group) not in spaces.info[root].readers:
                    spaces.info[root].readers.append((layer, group))
                if layer in read:  # a layer called twice reads one set of columns: its inputs are tied
                    spaces.union(read[layer], of[src], f"'{layer}', called twice,")
                read[layer] = of[src]
                out = m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
                of[node] = spaces.new(out, writer=layer)
                if layer in wrote:
                    spaces.union(wrote[layer], of[node], f"'{layer}', called twice,")
                wrote[layer] = of[node]
            elif isinstance(m, _PASS_MODULES) and args:
                of[node] = of[args[0]]
            else:
                blocked_output(node, f"{type(m).__name__} '{node.target}' reads them")
            continue
        target = node.target
        if node.op == "call_function" and target in _PASS_FUNCTIONS or node.op == "call_method" and \
                target in _PASS_METHODS:
            if args and args[0] is _nodes(node.args)[0]:
                of[node] = of[args[0]]
            else:
                blocked_output(node, f"'{getattr(target, '__name__', target)}' reads them")
            continue
        if node.op == "call_function" and target in _TIE or node.op == "call_method" and target in _TIE_METHODS:
            if len(args) == 2 and _shape(args[0]) == _shape(args[1]) == shape:
                of[node] = spaces.union(of[args[0]], of[args[1]], "a residual sum")
                continue
            if len(args) == 1 and len(_nodes(node.args)) == 1 and _shape(args[0]) == shape:
                of[node] = of[args[0]]  # with a number: channel-wise
                continue
        if node.op in ("call_function", "call_method") and getattr(target, "__name__", target) in ("flatten",) \
                and args and args[0] is node.args[0]:
            start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
            end = node.kwargs.get("end_dim", node.args[2] if len(node.args) > 2 else -1)
            if start == 1 and end == -1:
                of[node] = of[args[0]]
                continue
        reduces = getattr(target, "__name__", target) in ("mean", "sum", "amax")
        if node.op in ("call_function", "call_method") and reduces and args and args[0] is node.args[0]:
            src_shape = _shape(args[0])
            dims = _dims(node, len(src_shape)) if src_shape else None
            if dims and min(dims) >= 2 and shape and len(shape) >= 2 and shape[1] == src_shape[1]:
                of[node] = of[args[0]]
                continue
        if args or shape is not None:
            blocked_output(node, f"'{getattr(target, '__name__', target)}' reads them")
    return spaces.roots()


def prunable(spaces: Iterable[Space], names: Iterable[str]) -> list[Space]:
    """The spaces whose channels can be removed under a mask over parameters `names`: not blocked, written by
    at least one layer, every layer writing or reading them in the mask, at least two channels."""
    names = set(names)
    out = []
    for s in spaces:
        if s.blocked or not s.writers or s.channels < 2:
            continue
        if all(f"{layer}.weight" in names for layer in s.layers()):
            out.append(s)
    return out


def why_not(spaces: Iterable[Space], names: Iterable[str]) -> str:
    """Why no layer's channels can be removed: each layer writing channels, and what blocks them."""
    names, parts = set(names), []
    for s in spaces:
        for w in s.writers:
            if s.blocked == "the model's output":
                why = "the output layer: its outputs are never removed"
            elif s.blocked:
                why = s.blocked
            elif s.channels < 2:
                why = "one channel"
            else:
                out = [layer for layer in s.layers() if f"{layer}.weight" not in names]
                why = f"'{out[0]}' is not pruned" if out else "?"
            parts.append(f"'{w}' ({why})")
    return "; ".join(parts) or "it has no Linear or Conv2d layer"


def structure(model: nn.Module, input_shape: tuple[int, ...], names: Iterable[str], label: str = "") -> list[Space]:
    """The prunable channel spaces of `model` under a mask over `names`; LTHError naming the layers, and what
    blocks each, when there is none (`label`: the model's name in it)."""
    names = list(names)
    spaces = trace(model, input_shape)
    found = prunable(spaces, names)
    if not found:
        raise LTHError(f"channels: model {label or type(model).__name__} has no layer whose channels can be "
                       f"removed: {why_not(spaces, names)}")
    return found


def _rows(mask_or_scores: Mapping[str, torch.Tensor], layer: str, channels: int) -> torch.Tensor:
    return mask_or_scores[f"{layer}.weight"].reshape(channels, -1)


def channel_scores(scores: Mapping[str, torch.Tensor], mask: Mask, space: Space) -> torch.Tensor:
    """Per channel: the sum of the scores of its alive weights over every layer writing it (float64); a
    channel with no alive weight left is -inf (it stays removed)."""
    c = space.channels
    total = torch.zeros(c, dtype=torch.float64)
    alive = torch.zeros(c, dtype=torch.bool)
    for w in space.writers:
        m = _rows(mask, w, c).cpu()
        total += (_rows(scores, w, c).to(torch.float64).cpu() * m).sum(1)
        alive |= m.any(1)
    return total.masked_fill(~alive, -torch.inf)


def remove(mask: Mask, space: Space, keep: torch.Tensor) -> None:
    """Zero, in place, the rows of the channels `keep` drops in every writer (and its bias when the mask
    covers it) and their inputs in every reader."""
    drop = ~keep
    for w in space.writers:
        _rows(mask, w, space.channels)[drop] = False
        if f"{w}.bias" in mask:
            mask[f"{w}.bias"][drop] = False
    for r, _group in space.readers:
        m = mask[f"{r}.weight"]
        m.view(m.shape[0], space.channels, -1)[:, drop] = False


def _kept(order: torch.Tensor, k: int) -> torch.Tensor:
    keep = torch.zeros(len(order), dtype=torch.bool)
    keep[order[len(order) - k:]] = True
    return keep


def _apply(mask: Mask, spaces: list[Space], orders: list[torch.Tensor], counts: list[int]) -> Mask:
    new = {n: m.detach().cpu().clone() for n, m in mask.items()}
    for s, order, k in zip(spaces, orders, counts):
        remove(new, s, _kept(order, k))
    return new


def _orders(scores, mask, spaces) -> list[torch.Tensor]:
    """Each space's channels, lowest score first (ties: the lower channel first)."""
    return [torch.sort(channel_scores(scores, mask, s), stable=True).indices for s in spaces]


def _total(mask: Mask) -> int:
    return sum(int(m.sum()) for m in mask.values())


def lowest_density(mask: Mask, spaces: list[Space]) -> float:
    """The density a mask keeps when every space keeps one channel (the least channels pruning reaches)."""
    ones = {n: torch.ones(m.shape) for n, m in mask.items()}
    kept = _apply(mask, spaces, _orders(ones, mask, spaces), [1] * len(spaces))
    return _total(kept) / sum(m.numel() for m in mask.values())


def keep_channels(scores: Mapping[str, torch.Tensor], mask: Mask, density: float, spaces: list[Space]) -> Mask:
    """One-shot: every space keeps the same fraction f of its channels (at least one), f such that the
    network's weight density is nearest `density` (ties: the denser); weights already pruned stay pruned."""
    size = sum(m.numel() for m in mask.values())
    orders = _orders(scores, mask, spaces)

    def counts(f: float) -> list[int]:
        return [min(s.channels, max(1, round(f * s.channels))) for s in spaces]

    def kept(f: float) -> int:
        return _total(_apply(mask, spaces, orders, counts(f)))

    target = density * size
    lowest = kept(0.0)
    if lowest > target + 0.5:
        raise LTHError(f"channels: keeping one channel of every prunable layer keeps {lowest / size:.4g} of the "
                       f"weights, more than the density {density:g}")
    lo, hi = 0.0, 1.0  # kept(lo) <= target < kept(hi), or hi = 1
    if kept(1.0) <= target:
        lo = hi
    for _ in range(40):
        if counts(lo) == counts(hi):
            break
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if kept(mid) <= target else (lo, mid)
    best = min((lo, hi), key=lambda f: (abs(kept(f) - target), -kept(f)))
    return _apply(mask, spaces, orders, counts(best))


def remove_channel_rate(scores: Mapping[str, torch.Tensor], mask: Mask, rate: float, spaces: list[Space]) -> Mask:
    """One IMP round: each space loses round(rate x its alive channels) of them, lowest score first, keeping
    at least one."""
    orders, counts = _orders(scores, mask, spaces), []
    for s in spaces:
        alive = int(torch.isfinite(channel_scores(scores, mask, s)).sum())
        counts.append(max(1, alive - round(rate * alive)) if alive else 0)
    return _apply(mask, spaces, orders, counts)


def structure_of(context, mask: Mask) -> list[Space]:
    """The prunable channel spaces of the model a ScoreContext holds, under `mask`."""
    if context is None or context.model is None:
        raise LTHError("channels: pruning channels needs the model (a ScoreContext with model and input_shape)")
    return structure(context.model(), tuple(context.input_shape), list(mask))
