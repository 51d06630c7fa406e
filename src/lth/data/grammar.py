"""A synthetic token language for lottery tickets of a pre-trained transformer (after Chen et al.
2020, "The Lottery Ticket Hypothesis for Pre-trained BERT Networks"): a masked-token pre-training
task and downstream classification tasks drawn from one seeded language, all offline and CPU-sized.

The language (fixed by `grammar_seed`, `vocab` and `topics`; the same for every task, so that what
pre-training learns carries over) is a small probabilistic grammar of clauses with topics:

    sentence := clause+ PAD{0,2}          (exactly seq_len - 1 tokens after CLS)
    clause   := Det[n] Adj{0,2} Noun[n] ( "(" clause ")" )? Verb[n]

- agreement: a clause draws its number n (singular or plural, 1/2 each); its determiner, noun and
  verb take the form of that number. A relative clause sits between a noun and its verb, so the
  verb agrees with a noun before the whole bracketed clause (long-range, with an attractor inside);
- nesting: a relative clause follows a noun with probability 0.45 at depth 0 and 0.35 at depth 1,
  never deeper than MAX_DEPTH = 2;
- topics: a sentence draws one of `topics` topics; nouns, verbs and adjectives are drawn from
  topic-dependent weights, and a verb also depends on its subject noun (selectional preference);
- the vocabulary: tokens 0 = CLS (position 0 of every sequence), 1 = MASK, 2 = PAD (fills the last
  one or two positions when no clause fits), then `vocab` words, shuffled by grammar_seed into two
  brackets, two singular and two plural determiners, noun lemmas and verb lemmas with a singular
  and a plural form each, and adjectives (number-free).

A clause grows only while it fits: adjectives and a relative clause are drawn within the room
left, and clauses follow one another until fewer than 3 positions remain. Every string of the
grammar that fits is reachable, and a string has one parse.

Tasks (`task`), one example per sentence:
- "mlm": exactly one non-CLS, non-PAD position (uniform) is replaced by MASK; the label is the
  token it hid (classes: vocab + 3 tokens). Pre-training as a plain (N, C) classification.
- "topic": the label is the topic that generated the sentence (classes: `topics`).
- "agreement": in half of the sentences (a fair coin each) one verb, uniform among the sentence's
  verbs, is replaced by its other-number form; label 1 = every verb agrees with its subject, 0 =
  one does not (classes: 2).
- "depth": the label is the deepest bracket nesting of the sentence, 0..MAX_DEPTH (classes: 3).

Sentences depend on (grammar_seed, seed, task): tasks with the same `seed` draw different
sentences, so a downstream test set is not a sample of the pre-training corpus. No test sentence
(before masking or corruption) occurs among the training sentences.

An example is float32 one-hot tokens of shape (seq_len, vocab + 3) (2-D: lth.models.encoder reads
it as a sequence; it must not be normalised). Generation is pure Python (random.Random), so it is
the same with any torch version.

Too short a sequence is refused when the workflow is parsed: seq_len must hold CLS and the shortest
clause (4 tokens), "depth" needs room for a doubly nested clause (CLS + 13 words), and the
language must have at least 10 x (n_train + n_test) distinct sentences of that length (counted
exactly, `count_sentences`), or else the test set could not be kept apart from the training set.

`check_options`, `facts` and `count_sentences` are torch-free (they run when a workflow is parsed).
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from lth.core.errors import LTHError

if TYPE_CHECKING:
    import torch

CLS, MASK, PAD = 0, 1, 2
SPECIAL = 3  # tokens before the words
TASKS = ("mlm", "topic", "agreement", "depth")
DEFAULTS = {"task": "mlm", "seq_len": 24, "vocab": 40, "topics": 4, "n_train": 2000, "n_test": 1000,
            "grammar_seed": 0, "seed": 0}
MAX_DEPTH = 2
P_RELATIVE = (0.45, 0.35)  # a relative clause after a noun, at depth 0 and 1
P_ADJECTIVES = (0.5, 0.3, 0.2)  # 0, 1 or 2 adjectives before a noun
SHORTEST = 1 + 3  # CLS + Det Noun Verb
NESTED = 1 + 13  # CLS + Det Noun ( Det Noun ( Det Noun Verb ) Verb ) Verb
MIN_VOCAB = 18  # 6 function words, 3 noun and 2 verb lemmas (2 forms each), 2 adjectives
SPARE = 10  # distinct sentences per example requested, at least
SAMPLE_TRIES = 50  # draws per test example before the test set is given up as not separable


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def sizes(vocab: int) -> tuple[int, int, int]:
    """(noun lemmas, verb lemmas, adjectives) of a vocabulary of `vocab` words."""
    rest = vocab - 6
    nouns, verbs = rest // 4, rest // 6
    return nouns, verbs, rest - 2 * nouns - 2 * verbs


def num_classes(o: Mapping) -> int:
    return {"mlm": o["vocab"] + SPECIAL, "topic": o["topics"], "agreement": 2, "depth": MAX_DEPTH + 1}[o["task"]]


def count_sentences(seq_len: int, vocab: int) -> int:
    """Distinct token sequences of seq_len tokens (CLS included) the language can produce."""
    return _count(seq_len - 1, *sizes(vocab))


@lru_cache(maxsize=64)
def _count(words: int, nouns: int, verbs: int, adjectives: int) -> int:
    # clauses[d][l]: distinct clauses of exactly l words at depth d; heads: determiner (4: 2 per
    # number), noun and verb lemma; adjective strings of a words: adjectives**a.
    heads = 4 * nouns * verbs
    clauses = [[0] * (words + 1) for _ in range(MAX_DEPTH + 1)]
    for d in range(MAX_DEPTH, -1, -1):
        for length in range(3, words + 1):
            total = 0
            for a in range(len(P_ADJECTIVES)):
                if length == 3 + a:
                    total += adjectives**a
                inner = length - 3 - a - 2
                if d < MAX_DEPTH and inner >= 3:
                    total += adjectives**a * clauses[d + 1][inner]
            clauses[d][length] = heads * total
    seqs = [1] + [0] * words  # clause sequences of exactly l words
    for length in range(1, words + 1):
        seqs[length] = sum(clauses[0][c] * seqs[length - c] for c in range(3, length + 1))
    return sum(seqs[s] for s in range(max(0, words - 2), words + 1))  # then 0-2 PADs


def check_options(options: Mapping, where: str = "grammar") -> None:
    """Refuse bad generator options with one LTHError line naming the option and the value."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise LTHError(f"{where}: unknown option(s) {unknown}; allowed: {', '.join(DEFAULTS)}")
    o = {**DEFAULTS, **options}
    if o["task"] not in TASKS:
        raise LTHError(f"{where}: task must be one of {', '.join(TASKS)}, got {o['task']!r}")
    for key in ("seq_len", "vocab", "topics", "n_train", "n_test"):
        if not _is_int(o[key]) or o[key] <= 0:
            raise LTHError(f"{where}: {key} must be a positive integer, got {o[key]!r}")
    for key in ("grammar_seed", "seed"):
        if not _is_int(o[key]):
            raise LTHError(f"{where}: {key} must be an integer, got {o[key]!r}")
    if o["vocab"] < MIN_VOCAB:
        raise LTHError(f"{where}: vocab must be at least {MIN_VOCAB} words (brackets, determiners, nouns, verbs "
                       f"and adjectives), got {o['vocab']!r}")
    if o["topics"] < 2:
        raise LTHError(f"{where}: topics must be at least 2, got {o['topics']!r}")
    seq_len, task = o["seq_len"], o["task"]
    if seq_len < SHORTEST:
        raise LTHError(f"{where}: seq_len={seq_len} cannot hold a sentence: CLS and the shortest clause "
                       f"(determiner, noun, verb) take {SHORTEST} tokens")
    if task == "depth" and seq_len < NESTED:
        raise LTHError(f"{where}: task 'depth' needs seq_len >= {NESTED} (CLS and a doubly nested clause, so that "
                       f"every depth 0..{MAX_DEPTH} can occur), got {seq_len}")
    wanted = o["n_train"] + o["n_test"]
    have = count_sentences(seq_len, o["vocab"])
    if have < SPARE * wanted:
        raise LTHError(f"{where}: seq_len={seq_len} (vocab {o['vocab']}) allows only {have} distinct sentences, "
                       f"fewer than {SPARE} x (n_train + n_test) = {SPARE * wanted}: raise seq_len or vocab, or "
                       f"ask for fewer examples")


def facts(options: Mapping) -> dict:
    """Shape of one example (seq_len, vocab + 3), classes of the task and training-set size."""
    o = {**DEFAULTS, **options}
    return {"input_shape": (o["seq_len"], o["vocab"] + SPECIAL), "num_classes": num_classes(o),
            "train_size": o["n_train"]}


# ------------------------------------------------------------------------------------- language


class _Choice:
    """Draws an index with probability proportional to fixed positive weights (bisect on the cumulative sum)."""

    def __init__(self, weights: Sequence[float]):
        self.cum = list(itertools.accumulate(weights))

    def __call__(self, rng: random.Random) -> int:
        return min(bisect.bisect_right(self.cum, rng.random() * self.cum[-1]), len(self.cum) - 1)


@dataclass
class Language:
    """The language of (vocab, topics, grammar_seed): which token is which word and the weights.

    Per token (all vocab + 3): kind ("cls", "mask", "pad", "open", "close", "det", "noun", "verb",
    "adj") and number (0 singular, 1 plural, None for the rest); per noun/verb lemma its two forms.
    """

    vocab: int
    topics: int
    kind: list[str]
    number: list[int | None]
    open: int
    close: int
    dets: tuple[list[int], list[int]]  # per number
    nouns: list[tuple[int, int]]  # per lemma: (singular, plural) token
    verbs: list[tuple[int, int]]
    adjectives: list[int]
    det_weights: tuple[list[float], list[float]]
    noun_weights: list[list[float]]  # per topic, per lemma
    verb_weights: list[list[float]]  # per topic, per lemma
    adjective_weights: list[list[float]]  # per topic
    compat: list[list[float]]  # per noun lemma, per verb lemma

    def __post_init__(self):
        self._det = [_Choice(w) for w in self.det_weights]
        self._noun = [_Choice(w) for w in self.noun_weights]
        self._adj = [_Choice(w) for w in self.adjective_weights]
        self._verb = [[_Choice([t * c for t, c in zip(tw, cw)]) for cw in self.compat] for tw in self.verb_weights]
        self._n_adj = _Choice(P_ADJECTIVES)

    def clause(self, rng: random.Random, topic: int, room: int, depth: int = 0) -> list[int]:
        """One clause of at most `room` (>= 3) words."""
        n = int(rng.random() < 0.5)
        out = [self.dets[n][self._det[n](rng)]]
        a = min(self._n_adj(rng), room - 3)
        out += [self.adjectives[self._adj[topic](rng)] for _ in range(a)]
        noun = self._noun[topic](rng)
        out.append(self.nouns[noun][n])
        inner = room - 3 - a - 2
        if depth < MAX_DEPTH and inner >= 3 and rng.random() < P_RELATIVE[depth]:
            out += [self.open, *self.clause(rng, topic, inner, depth + 1), self.close]
        out.append(self.verbs[self._verb[topic][noun](rng)][n])
        return out

    def sentence(self, rng: random.Random, topic: int, seq_len: int) -> list[int]:
        """CLS, then clauses while at least 3 positions remain, then PAD: exactly seq_len tokens."""
        out = [CLS]
        while seq_len - len(out) >= 3:
            out += self.clause(rng, topic, seq_len - len(out))
        return out + [PAD] * (seq_len - len(out))

    def flip(self, token: int) -> int:
        """A verb or noun in the form of the other number."""
        for forms in (self.verbs if self.kind[token] == "verb" else self.nouns):
            if token in forms:
                return forms[1 - forms.index(token)]
        raise ValueError(f"token {token} has no number")


@lru_cache(maxsize=16)
def language(vocab: int, topics: int, grammar_seed: int) -> Language:
    """The language of these options (the same for every task, seed and seq_len)."""
    rng = random.Random(f"lth.data.grammar language {grammar_seed} {vocab} {topics}")
    n_nouns, n_verbs, n_adj = sizes(vocab)
    words = list(range(SPECIAL, SPECIAL + vocab))
    rng.shuffle(words)
    it = iter(words)

    def take(k: int) -> list[int]:
        return [next(it) for _ in range(k)]

    open_, close = take(2)
    dets = (take(2), take(2))
    nouns = list(zip(take(n_nouns), take(n_nouns)))
    verbs = list(zip(take(n_verbs), take(n_verbs)))
    adjectives = take(n_adj)
    kind = ["cls", "mask", "pad"] + [""] * vocab
    number: list[int | None] = [None] * (vocab + SPECIAL)
    kind[open_], kind[close] = "open", "close"
    for n in (0, 1):
        for t in dets[n]:
            kind[t], number[t] = "det", n
    for name, lemmas in (("noun", nouns), ("verb", verbs)):
        for forms in lemmas:
            for n, t in enumerate(forms):
                kind[t], number[t] = name, n
    for t in adjectives:
        kind[t] = "adj"

    def topical(k: int) -> list[list[float]]:
        # a shared part and a sparse topic part (gamma(0.3) ~ Dirichlet-like): topics overlap
        shared = [rng.gammavariate(1.0, 1.0) for _ in range(k)]
        return [[0.3 * s / sum(shared) + 0.7 * w / sum(ws) for s, w in zip(shared, ws)]
                for ws in ([rng.gammavariate(0.3, 1.0) + 1e-3 for _ in range(k)] for _ in range(topics))]

    return Language(
        vocab=vocab, topics=topics, kind=kind, number=number, open=open_, close=close, dets=dets, nouns=nouns,
        verbs=verbs, adjectives=adjectives,
        det_weights=tuple([rng.uniform(0.5, 1.5) for _ in range(2)] for _ in range(2)),
        noun_weights=topical(n_nouns), verb_weights=topical(n_verbs), adjective_weights=topical(n_adj),
        compat=[[rng.gammavariate(0.5, 1.0) + 1e-3 for _ in range(n_verbs)] for _ in range(n_nouns)])


def language_of(options: Mapping) -> Language:
    o = {**DEFAULTS, **options}
    return language(o["vocab"], o["topics"], o["grammar_seed"])


def depth_of(tokens: Sequence[int], lang: Language) -> int:
    """Deepest bracket nesting of a token sequence."""
    depth = deepest = 0
    for t in tokens:
        depth += (t == lang.open) - (t == lang.close)
        deepest = max(deepest, depth)
    return deepest


# --------------------------------------------------------------------------------------- sample


def sample(options: Mapping) -> dict[str, tuple[list[list[int]], list[int]]]:
    """Token lists and labels per split ("train", "test") of the task: pure Python, no torch."""
    o = {**DEFAULTS, **options}
    lang = language_of(o)
    task, seq_len = o["task"], o["seq_len"]
    rng = random.Random(f"lth.data.grammar sample {o['grammar_seed']} {o['seed']} {task}")
    seen: set[tuple[int, ...]] = set()
    out = {}
    for split, n in (("train", o["n_train"]), ("test", o["n_test"])):
        xs, ys = [], []
        tries = 0
        while len(xs) < n:
            topic = rng.randrange(lang.topics)
            tokens = lang.sentence(rng, topic, seq_len)
            if split == "test":
                tries += 1
                if tries > SAMPLE_TRIES * n:
                    raise LTHError(f"grammar: could not draw {n} test sentences apart from the training sentences "
                                   f"(seq_len={seq_len}, vocab={o['vocab']}): raise seq_len or vocab")
                if tuple(tokens) in seen:
                    continue
            else:
                seen.add(tuple(tokens))
            xs.append(tokens)
            ys.append(_label(task, tokens, topic, lang, rng))
        out[split] = (xs, ys)
    return out


def _label(task: str, tokens: list[int], topic: int, lang: Language, rng: random.Random) -> int:
    """The example's label; masks or corrupts `tokens` in place where the task says so."""
    if task == "mlm":
        positions = [i for i, t in enumerate(tokens) if i and t != PAD]
        i = positions[rng.randrange(len(positions))]
        label, tokens[i] = tokens[i], MASK
        return label
    if task == "topic":
        return topic
    if task == "agreement":
        if rng.random() < 0.5:
            return 1
        verbs = [i for i, t in enumerate(tokens) if lang.kind[t] == "verb"]
        i = verbs[rng.randrange(len(verbs))]
        tokens[i] = lang.flip(tokens[i])
        return 0
    return depth_of(tokens, lang)


def make_grammar(name: str, raw: Path, download: bool, options: dict) -> dict[str, torch.Tensor]:
    """The task's splits as tensors: x float32 one-hot (N, seq_len, vocab + 3), y int64."""
    import torch
    import torch.nn.functional as F

    check_options(options, f"dataset {name!r}")
    o = {**DEFAULTS, **options}
    tokens = o["vocab"] + SPECIAL
    out = {}
    for split, (xs, ys) in sample(o).items():
        ids = torch.tensor(xs, dtype=torch.int64).reshape(len(xs), o["seq_len"])
        out[f"x_{split}"] = F.one_hot(ids, tokens).to(torch.float32)
        out[f"y_{split}"] = torch.tensor(ys, dtype=torch.int64)
    return out
