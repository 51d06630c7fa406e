"""The synthetic token language (lth.data.grammar) and the bidirectional encoder (lth.models.encoder):
the samples, the labels of every task re-derived independently, bad options, the encoder's readout,
and a tiny masked-token pre-training run."""

import collections
import math
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from lth.core.errors import LTHError
from lth.data.grammar import (
    CLS,
    DEFAULTS,
    MASK,
    MAX_DEPTH,
    PAD,
    SPECIAL,
    TASKS,
    check_options,
    count_sentences,
    facts,
    language,
    language_of,
    make_grammar,
    sizes,
)
from lth.pruning import masks

SMALL = {"seq_len": 16, "n_train": 300, "n_test": 200}


def data(**options):
    return make_grammar("grammar", None, False, {**SMALL, **options})


def ids(x):
    """Token ids of one-hot examples (N, L, T) -> (N, L)."""
    return x.argmax(-1)


def parse(tokens, lang):
    """An independent reading of a token sequence: (grammatical form?, every verb agrees?, deepest nesting).

    Grammatical form: CLS, then clauses Det Adj* Noun [( clause )] Verb, then only PAD; agreement is
    checked apart: each noun against its determiner, each verb against the number of the last noun
    still waiting for its verb."""
    kinds = [lang.kind[t] for t in tokens]
    if kinds[0] != "cls":
        return False, False, 0
    body = kinds[1:]
    while body and body[-1] == "pad":
        body.pop()
    pattern = {"det": "D", "adj": "A", "noun": "N", "verb": "V", "open": "(", "close": ")"}
    if any(k not in pattern for k in body) or len(kinds) - 1 - len(body) > 2:
        return False, False, 0
    text = "".join(pattern[k] for k in body)
    clause = "DA*N(\\(DA*N(\\(DA*NV\\))?V\\))?V"
    import re

    form = re.fullmatch(f"({clause})+", text) is not None
    waiting, agrees, depth, deepest, det = [], True, 0, 0, None
    for t, k in zip(tokens, kinds):
        if k == "det":
            det = lang.number[t]
        elif k == "noun":
            agrees &= det == lang.number[t]
            waiting.append(lang.number[t])
        elif k == "verb":
            agrees &= bool(waiting) and waiting.pop() == lang.number[t]
        depth += (k == "open") - (k == "close")
        deepest = max(deepest, depth)
    return form, agrees and not waiting, deepest


def sentences(x):
    return [tuple(row) for row in ids(x).tolist()]


# ------------------------------------------------------------------------------------------ dataset


@pytest.mark.parametrize("task", TASKS)
def test_shapes_dtypes_and_facts(task):
    options = {**SMALL, "task": task}
    d, f = data(task=task), facts(options)
    for split, n in (("train", 300), ("test", 200)):
        x, y = d[f"x_{split}"], d[f"y_{split}"]
        assert x.dtype == torch.float32 and tuple(x.shape) == (n, *f["input_shape"]) and y.dtype == torch.int64
        assert torch.equal(x.sum(-1), torch.ones(n, 16)) and set(x.unique().tolist()) == {0.0, 1.0}
        assert 0 <= int(y.min()) and int(y.max()) < f["num_classes"]
        assert (ids(x)[:, 0] == CLS).all() and not (ids(x)[:, 1:] == CLS).any()
    assert f["input_shape"] == (16, DEFAULTS["vocab"] + SPECIAL) and f["train_size"] == 300
    assert f["num_classes"] == {"mlm": DEFAULTS["vocab"] + 3, "topic": 4, "agreement": 2, "depth": MAX_DEPTH + 1}[task]


def test_deterministic_per_options_and_seeds_matter():
    a, b = data(task="mlm"), data(task="mlm")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["x_train"], data(task="mlm", seed=1)["x_train"])
    assert not torch.equal(a["x_train"], data(task="mlm", grammar_seed=1)["x_train"])


def test_one_language_for_every_task_and_seed():
    lang = language_of({"task": "mlm"})
    fresh = language.__wrapped__(DEFAULTS["vocab"], DEFAULTS["topics"], 0)  # rebuilt, not the cached object
    assert (fresh.kind, fresh.number, fresh.noun_weights, fresh.compat) == (lang.kind, lang.number,
                                                                            lang.noun_weights, lang.compat)
    for task in ("topic", "depth"):
        assert language_of({"task": task, "seed": 3, "seq_len": 30}) is lang
        for row in sentences(data(task=task, seed=3)["x_train"]):
            assert parse(row, lang)[:2] == (True, True)
    other = language.__wrapped__(DEFAULTS["vocab"], DEFAULTS["topics"], 1)
    assert other.kind != lang.kind
    # word classes: the sizes of a vocabulary, each token exactly one kind
    n, v, a = sizes(40)
    counts = collections.Counter(lang.kind)
    assert counts == {"cls": 1, "mask": 1, "pad": 1, "open": 1, "close": 1, "det": 4, "noun": 2 * n, "verb": 2 * v,
                      "adj": a}


def test_mlm_one_mask_and_the_label_is_the_hidden_token():
    lang = language_of({})
    d = data(task="mlm")
    for split in ("train", "test"):
        t, y = ids(d[f"x_{split}"]), d[f"y_{split}"]
        assert ((t == MASK).sum(1) == 1).all()
        where = (t == MASK).int().argmax(1)
        assert (where > 0).all()
        assert not torch.isin(y, torch.tensor([CLS, MASK, PAD])).any()
        restored = t.clone()
        restored[torch.arange(len(t)), where] = y
        for row in restored.tolist():
            assert parse(row, lang)[:2] == (True, True)
        # where the hidden token is a word with a number, its other form would break agreement
        flipped = restored.clone()
        numbered = [i for i, (row, p) in enumerate(zip(restored.tolist(), where.tolist()))
                    if lang.kind[row[p]] in ("noun", "verb")]
        for i in numbered:
            p = int(where[i])
            flipped[i, p] = lang.flip(int(restored[i, p]))
            assert parse(flipped[i].tolist(), lang)[1] is False
    positions = collections.Counter(int(p) for p in (ids(d["x_train"]) == MASK).int().argmax(1))
    assert len(positions) >= 10  # spread over the sequence


def test_agreement_labels_rederived():
    lang = language_of({})
    d = data(task="agreement")
    for split in ("train", "test"):
        rows, y = sentences(d[f"x_{split}"]), d[f"y_{split}"].tolist()
        assert [int(parse(r, lang)[1]) for r in rows] == y
        assert all(parse(r, lang)[0] for r in rows)  # the word classes are intact: only a verb's number changed
        assert 0.35 < sum(y) / len(y) < 0.65


def test_depth_labels_rederived():
    lang = language_of({})
    d = data(task="depth")
    for split in ("train", "test"):
        rows, y = sentences(d[f"x_{split}"]), d[f"y_{split}"].tolist()
        assert [parse(r, lang)[2] for r in rows] == y
    assert set(d["y_train"].tolist()) == set(range(MAX_DEPTH + 1))


def test_topic_labels_follow_the_topic_weights():
    """A naive Bayes reading of the content words with the language's own topic weights finds the label."""
    lang = language_of({})
    d = data(task="topic", n_test=1000)

    def loglik(row, k):
        total = 0.0
        for t in row:
            kind = lang.kind[t]
            if kind == "noun":
                total += math.log(lang.noun_weights[k][next(i for i, f in enumerate(lang.nouns) if t in f)])
            elif kind == "adj":
                total += math.log(lang.adjective_weights[k][lang.adjectives.index(t)])
        return total

    rows, y = sentences(d["x_test"]), d["y_test"].tolist()
    guess = [max(range(lang.topics), key=lambda k: loglik(r, k)) for r in rows]
    assert sum(g == t for g, t in zip(guess, y)) / len(y) > 0.75
    assert min(collections.Counter(y).values()) > 150  # every topic drawn


@pytest.mark.parametrize("task", ["topic", "mlm"])
def test_test_sentences_never_in_training(task):
    d = data(task=task, seq_len=8, n_train=2000, n_test=1000)  # a small language: repeats are common
    train, test = sentences(d["x_train"]), sentences(d["x_test"])
    if task == "mlm":  # compare the sentences before masking
        train, test = ([tuple(y if t == MASK else t for t in row) for row, y in zip(rows, d[f"y_{s}"].tolist())]
                       for rows, s in ((train, "train"), (test, "test")))
    assert len(set(train)) < len(train)  # repeats within training are allowed ...
    assert not set(train) & set(test)  # ... across the split they are not


def test_tasks_draw_different_sentences():
    base = {t: {tuple(r) for r in sentences(data(task=t)["x_train"])} for t in ("topic", "depth")}
    assert not base["topic"] & base["depth"]


def test_count_sentences_matches_an_enumeration():
    lang = language(18, 2, 0)
    n_nouns, n_verbs, n_adj = sizes(18)

    def clauses(room, depth):
        """Every clause of at most `room` words at this depth, as kind-and-choice tuples."""
        for a in range(3):
            for inner in [None] + ([c for c in clauses(room - 5 - a, depth + 1)] if depth < MAX_DEPTH else []):
                length = 3 + a + (0 if inner is None else 2 + len(inner))
                if length <= room:
                    for det in range(4):
                        for adjs in _product(range(n_adj), a):
                            for noun in range(n_nouns):
                                for verb in range(n_verbs):
                                    yield ((det,), *adjs, (noun,), *(() if inner is None else ("(", *inner, ")")),
                                           ("v", verb))

    def count(words):
        total = 0

        def fill(room):
            nonlocal total
            if room < 3:
                total += 1
                return
            for c in clauses(room, 0):
                fill(room - len(c))
        fill(words)
        return total

    for seq_len in range(4, 11):
        assert count_sentences(seq_len, 18) == count(seq_len - 1), seq_len
    assert lang.kind.count("noun") == 2 * n_nouns


def _product(values, k):
    import itertools

    return list(itertools.product([(v,) for v in values], repeat=k))


def test_torch_free_at_import():
    code = ("import sys, lth.data.grammar as g; g.check_options({'task': 'depth'}); g.facts({}); "
            "g.count_sentences(24, 40); print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.parametrize("options, message", [
    ({"task": "nli"}, "grammar: task must be one of mlm, topic, agreement, depth, got 'nli'"),
    ({"seq_len": 3}, "seq_len=3 cannot hold a sentence: CLS and the shortest clause (determiner, noun, verb) take 4"),
    ({"seq_len": 0}, "seq_len must be a positive integer, got 0"),
    ({"seq_len": 24.0}, "seq_len must be a positive integer, got 24.0"),
    ({"seq_len": 5}, "seq_len=5 (vocab 40) allows only 1440 distinct sentences, fewer than 10 x (n_train + n_test)"),
    ({"seq_len": 6, "n_train": 100, "n_test": 100}, None),  # 11680 sentences: enough for 200 examples
    ({"task": "depth", "seq_len": 13}, "task 'depth' needs seq_len >= 14"),
    ({"vocab": 17}, "vocab must be at least 18 words"),
    ({"vocab": True}, "vocab must be a positive integer, got True"),
    ({"topics": 1}, "topics must be at least 2, got 1"),
    ({"n_train": 0}, "n_train must be a positive integer, got 0"),
    ({"n_test": -5}, "n_test must be a positive integer, got -5"),
    ({"seed": "0"}, "seed must be an integer, got '0'"),
    ({"grammar_seed": 1.5}, "grammar_seed must be an integer, got 1.5"),
    ({"length": 3}, "unknown option(s) ['length']"),
])
def test_bad_options_refused_in_one_line(options, message):
    if message is None:
        check_options(options)
        return
    with pytest.raises(LTHError) as e:
        check_options(options)
    assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(LTHError, match="dataset 'grammar'"):
        make_grammar("grammar", None, False, options)


def test_registration():
    from lth.core import parts
    from lth.plan.checks import check_dataset
    from lth.plan.facts import dataset_facts

    assert parts.DATASETS["grammar"].options == DEFAULTS
    info = parts.DATASETS["grammar"].info
    assert (info["augment"], info["downloadable"], info["normalise"], info["x_dtype"]) == (False, False, False,
                                                                                           "float32")
    for options in ({}, {"task": "agreement", "seq_len": 20}, {"task": "topic", "topics": 6, "vocab": 60}):
        assert dataset_facts("grammar", options) == facts(options)
    with pytest.raises(LTHError, match="seq_len=3 cannot hold"):
        check_dataset({"name": "grammar", "options": {"seq_len": 3}, "val_size": 10}, 10, "dataset")
    assert parts.MODELS["encoder"].options == ("dim", "heads", "layers")


def test_fetch_and_load_splits(tmp_path):
    from lth.data.fetch import fetch
    from lth.data.splits import load_splits

    options = {"task": "agreement", **SMALL}
    fetch("grammar", tmp_path, options=options)
    s = load_splits("grammar", tmp_path, val_size=50, options=options)
    assert s.x_train.shape == (250, 16, 43) and s.x_val.shape == (50, 16, 43)
    assert set(s.x_train.unique().tolist()) == {0.0, 1.0}  # one-hot, not normalised


# ------------------------------------------------------------------------------------------ encoder


def build(shape=(16, 43), classes=43, seed=0, **options):
    from lth.models import build_model

    return build_model("encoder", shape, classes, seed=seed, **{"dim": 32, "heads": 4, "layers": 2, **options})


def test_encoder_shapes_layers_and_init():
    model = build()
    x = data(task="mlm")["x_train"][:8]
    assert model(x).shape == (8, 43)
    assert torch.equal(model(x), model(x.flatten(1)))  # flattened inputs read the same
    kinds = masks.layer_kinds(model)
    blocks = {f"blocks.{i}.{n}.weight": "fc" for i in (0, 1) for n in ("q", "k", "v", "proj", "fc1", "fc2")}
    assert kinds == {"embed.weight": "fc", "pos.weight": "fc", **blocks, "out.weight": "output"}
    assert [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1] == "out"
    for m in model.modules():  # the repository's convention: only Linear layers carry parameters here
        if list(m.parameters(recurse=False)):
            assert isinstance(m, nn.Linear), type(m)
    a, b, c = (build(seed=s).state_dict() for s in (1, 1, 2))
    assert all(torch.equal(a[k], b[k]) for k in a) and all(not torch.equal(a[k], c[k]) for k in a if "weight" in k)
    assert all(not v.any() for k, v in a.items() if k.endswith("bias"))
    assert build(dim=64).blocks[0].q.weight.std().item() == pytest.approx(1 / 8, rel=0.1)


def test_encoder_registered_kinds_on_the_registry_test_shape():
    from lth.core.parts import MODELS

    for shape in ((40,), (16, 43)):  # tests/models/test_models.py builds every "vector" model on (40,)
        model = build(shape, 10)
        assert model(torch.randn(3, *shape)).shape == (3, 10)
        assert sorted(set(masks.layer_kinds(model).values())) == sorted(MODELS["encoder"].kinds)


def test_encoder_bad_options():
    with pytest.raises(LTHError, match="dim=30 is not a multiple of heads=4"):
        build(dim=30)
    with pytest.raises(LTHError, match="cannot take input_shape"):
        build((1, 8, 8))


def hidden_states(model, x):
    """Every position's final (layer-normed) hidden state, computed around the readout."""
    x = x.reshape(len(x), model.length, model.tokens)
    h = model.embed(x) + model.pos.weight.t()
    for block in model.blocks:
        h = block(h)
    return model.ln(h)


@torch.no_grad()
def test_encoder_reads_out_at_the_mask_else_at_cls():
    model = build()
    x = data(task="mlm")["x_train"][:6]
    where = ids(x).eq(MASK).int().argmax(1)
    assert torch.equal(model.readout(x), where)
    h = hidden_states(model, x)
    assert torch.allclose(model(x), model.out(h[torch.arange(6), where]), atol=1e-5)
    assert not torch.allclose(model(x), model.out(h[:, 0]), atol=1e-3)
    plain = data(task="topic")["x_train"][:6]
    assert torch.equal(model.readout(plain), torch.zeros(6, dtype=torch.long))
    assert torch.allclose(model(plain), model.out(hidden_states(model, plain)[:, 0]), atol=1e-5)


@torch.no_grad()
def test_encoder_attends_to_every_position_both_ways():
    model = build()
    x = data(task="mlm")["x_train"][:1]
    p = int(ids(x)[0].eq(MASK).int().argmax())
    base = model(x)
    for i in range(1, 16):  # a token before or after the readout position changes the output
        if i == p:
            continue
        y = x.clone()
        y[0, i] = 0
        y[0, i, SPECIAL + (int(ids(x)[0, i]) - SPECIAL + 1) % 40] = 1
        assert not torch.allclose(model(y), base, atol=1e-6), i
    plain = data(task="topic")["x_train"][:1]  # no MASK: read at CLS, which sees the last token
    y = plain.clone()
    y[0, -1] = 0
    y[0, -1, CLS + 5] = 1
    assert not torch.allclose(model(y), model(plain), atol=1e-6)


# ------------------------------------------------------------------------------------- pre-training


def test_tiny_pretraining_beats_the_unigram_baseline(one_thread):
    import types

    from lth.training.loop import Segment, train

    d = data(task="mlm", seq_len=12, n_train=3000, n_test=500)
    s = types.SimpleNamespace(x_train=d["x_train"], y_train=d["y_train"], x_val=d["x_test"][:0], y_val=d["y_test"][:0],
                              x_test=d["x_test"], y_test=d["y_test"])
    unigram = collections.Counter(d["y_train"].tolist()).most_common(1)[0][0]
    baseline = (d["y_test"] == unigram).float().mean().item()
    model = build((12, 43), 43, dim=32, layers=1)
    training = {"optimizer": "adamw", "weight_decay": 0.01, "lr": 3e-3, "batch_size": 64, "eval_every": 10**6,
                "checkpoint_every": 10**6}
    started = time.perf_counter()
    out = train(model, masks.full_mask(model), s, training, Segment(0, 250, lambda t: 3e-3, data_seed=0))
    accuracy = out["summary"]["test_accuracy"]
    assert accuracy > baseline + 0.15, (accuracy, baseline)
    assert time.perf_counter() - started < 20


def test_the_encoder_reads_out_at_the_mask_token_of_the_grammar():
    """The encoder keeps its own MASK channel (a model imports no data generator): the two agree."""
    from lth.models import encoder

    assert encoder.MASK == MASK
