"""Mutation check of the exactness claims: does a test fail when a claim breaks?

    uv run python benchmarks/mutation.py [--rev REV] [--only NAME ...] [--list]      (or: make mutation)

Each mutant below breaks one line that a claim rests on (pruned weights stay zero, selections keep
exact counts, a resumed run does not train again what it had trained, ...) and names the tests
that hold that claim. The check copies the committed tree (HEAD, or --rev REV: e.g. the commit
before a test was strengthened) into a scratch folder, runs each mutant's tests once unmutated (they
must pass), then, for each mutant, writes the broken line into the copy, runs its tests (pytest -x),
and puts the line back. A mutant is killed when its tests fail, survived when they pass. It prints,
per module, the mutants killed and survived, then lists the survivors, with the reason where one
is known to be equivalent (the program means the same). The work tree is never written: the check
refuses to start on uncommitted changes (they would not be in the copy), and the copy, restored
after every mutant and when interrupted, is deleted at the end. It takes some minutes: not part of
`make test`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    module: str  # the claim's module (src/lth/<module>.py)
    old: str  # the line as it is (must occur exactly once in the module)
    new: str  # the broken line
    tests: tuple[str, ...]  # the tests that hold the claim
    claim: str


def m(name, module, old, new, tests, claim):
    return Mutant(name, module, old, new, tuple(tests.split()), claim)


MASKS = "tests/pruning/test_masks.py tests/training/test_training.py"
SELECT = "tests/pruning/test_pruning.py"
SCORES = "tests/pruning/test_scores.py"
START = "tests/jobs/test_start.py"
BATCHED = "tests/training/test_batched.py"
MUTANTS = [
    m("enforcer skips the last layer", "pruning/masks", "torch._foreach_mul_(self.params, self.factors)",
      "torch._foreach_mul_(self.params[:-1], self.factors[:-1])", MASKS, "pruned weights stay exactly zero"),
    m("density counts the pruned", "pruning/masks",
      "return sum(int(m.sum()) for m in mask.values()) / total if total else 1.0",
      "return sum(int((~m).sum()) for m in mask.values()) / total if total else 1.0", MASKS,
      "weights remaining is the fraction of prunable weights kept"),
    m("one weight fewer removed", "pruning/select", "new[idx[order[:n_remove]]] = False",
      "new[idx[order[: max(0, n_remove - 1)]]] = False", SELECT, "a round removes exactly its count"),
    m("per-layer count truncated", "pruning/select",
      "new[name] = _remove_lowest(scores[name].reshape(-1), alive, round(rate * int(alive.sum()))).reshape(m.shape)",
      "new[name] = _remove_lowest(scores[name].reshape(-1), alive, int(rate * int(alive.sum()))).reshape(m.shape)",
      SELECT, "counts are round(rate x remaining), torch.nn.utils.prune's rule"),
    m("global floor ignored", "pruning/select", "forced = _top_of_each_layer(scores, mask, min_per_layer)",
      "forced = _top_of_each_layer(scores, mask, 0)", f"{SELECT} tests/plan/test_sweep.py",
      "min_per_layer keeps every layer"),
    m("ERK never rescales", "pruning/distribution", "over = [n for n in free if scale * raw[n] > 1.0]",
      "over = []", f"{SELECT} tests/plan/test_sweep.py", "ERK: a layer over full density stays dense"),
    m("uniform count truncated", "pruning/distribution",
      "return {n: max(min(min_per_layer, m.numel()), round(fractions[n] * m.numel())) for n, m in mask.items()}",
      "return {n: max(min(min_per_layer, m.numel()), int(fractions[n] * m.numel())) for n, m in mask.items()}",
      f"{SELECT} tests/plan/test_sweep.py", "per-layer counts are exact"),
    m("magnitude without abs", "pruning/scores/magnitude",
      "return {name: weights[name].detach().abs().float().cpu() for name in mask}",
      "return {name: weights[name].detach().float().cpu() for name in mask}", f"{SCORES} {SELECT}",
      "the smallest |w| go first"),
    m("snip without the weight", "pruning/scores/snip",
      "return {name: as_score((g * w).abs()) for name, w, g in zip(mask, ws, grads)}",
      "return {name: as_score(g.abs()) for name, w, g in zip(mask, ws, grads)}", SCORES, "SNIP is |g * w|"),
    m("grasp sign flipped", "pruning/scores/grasp",
      "return {name: as_score(w * h) for name, w, h in zip(mask, ws, hg)}",
      "return {name: as_score(-w * h) for name, w, h in zip(mask, ws, hg)}", SCORES, "GraSP is w * Hg"),
    m("synflow in one round", "pruning/__init__", 'rounds = method["rounds"]', "rounds = 1",
      "tests/plan/test_sweep.py tests/pruning/test_scores.py", "SynFlow's iterated rounds keep every layer"),
    m("reinit keeps theta_0", "jobs/start",
      'return derive_seed(key.seed, key.variant, key.level) if weights == "fresh" else key.seed',
      "return key.seed", START, "reinit starts from a fresh initialisation"),
    m("random mask keeps everything", "jobs/start", "return random_with_counts(template, masks.counts(template), g)",
      "return random_with_counts(template, {n: t.numel() for n, t in template.items()}, g)", START,
      "the random control keeps the ticket's per-layer counts"),
    m("fine-tuning at the first rate", "jobs/start", "final_lr = lr_at(training, training.iterations - 1)",
      "final_lr = lr_at(training, 0)", START, "fine-tuning trains at the schedule's final rate"),
    m("rewound runs start at 0", "jobs/start", 'return Start(model, mask, 0 if variant.schedule == "full" else '
      's.rewind_iteration,', "return Start(model, mask, 0,", START, "rewound runs train T - k from k"),
    m("resume ignores the checkpoint", "training/loop",
      'return state["iteration"], state["curves"]',
      "return seg.start, [evaluation_point(model, splits, seg.start, seg.lr(seg.start), None, None)]",
      "tests/training/test_training.py tests/jobs/test_jobs.py tests/training/test_edgepopup.py",
      "a resumed run trains only what it had not"),
    m("stopped members' statistics move", "training/batched/group", "for k, saved in self.held.items():",
      "for k, saved in {}.items():", BATCHED, "a stopped member is left as it was"),
    m("members share one learning rate", "training/batched/group",
      "lr = self.segments[k].lr(self.segments[k].start + self.step)",
      "lr = self.segments[0].lr(self.segments[0].start + self.step)", BATCHED,
      "each member follows its own schedule"),
    m("members' losses averaged", "training/batched/group", "grads = torch.autograd.grad(losses.sum(), self.params)",
      "grads = torch.autograd.grad(losses.mean(), self.params)", BATCHED,
      "a member's gradient is its own, as alone"),
    m("interior points are the nearer end", "analyses/interpolate", "state = interpolate(state_a, state_b, alpha)",
      "state = interpolate(state_a, state_b, float(round(alpha)))",
      "tests/analyses/test_interpolate.py tests/analyses/test_analyses.py",
      "the barrier is measured along the interpolated path"),
    m("early-bird keeps the smallest", "analyses/earlybird_detector",
      'scores = {n: params[n].detach().abs().to("cpu", torch.float64) for n in self.mask}',
      'scores = {n: -params[n].detach().abs().to("cpu", torch.float64) for n in self.mask}',
      "tests/analyses/test_earlybird.py tests/analyses/test_analyses.py",
      "the early-bird ticket is the global magnitude mask"),
    m("early-bird fires without a full window", "analyses/earlybird_detector",
      "if self.fired_at is None and len(self._queue) == self.window and worst < self.threshold:",
      "if self.fired_at is None and worst < self.threshold:",
      "tests/analyses/test_earlybird.py tests/analyses/test_analyses.py", "the detector needs a full window"),
    m("IHT schedule quadratic", "training/modes/iht", "return final_density + (1.0 - final_density) * (1.0 - p) ** 3",
      "return final_density + (1.0 - final_density) * (1.0 - p) ** 2", "tests/training/test_iht.py",
      "IHT's density follows the cubic schedule"),
    m("IHT count truncated", "training/modes/iht",
      "self._keep = [top_k(p.detach().abs().flatten(), round(d * p.numel())).view_as(p) for p in self.params]",
      "self._keep = [top_k(p.detach().abs().flatten(), int(d * p.numel())).view_as(p) for p in self.params]",
      "tests/training/test_iht.py tests/plan/test_sweep.py", "IHT keeps exactly round(d x n)"),
    m("checkpoint interval in the fingerprint", "plan/fingerprints", 'NOT_RESULTS = ("checkpoint_every",)',
      "NOT_RESULTS = ()", "tests/plan/test_settings.py tests/plan/test_plan.py",
      "how a run is checkpointed does not change its fingerprint"),
    m("excluded layers not fingerprinted", "plan/fingerprints",
      'sorted(s.pruning.exclude), *(["biases pruned"] if s.pruning.biases else []))',
      '*(["biases pruned"] if s.pruning.biases else []))',
      "tests/plan/test_settings.py tests/plan/test_plan.py", "the dense mask's settings name the dense folder"),
    m("removed keys not marked", "plan/fingerprints", "out.update({k: REMOVED for k in default if k not in value})",
      "pass", "tests/plan/test_settings.py tests/plan/test_plan.py", "different settings, different fingerprints"),
    m("random control on fresh weights", "plan/variants",
      'Variant("random_prune", weights="rewind", mask="random", chain="ticket"),',
      'Variant("random_prune", weights="fresh", mask="random", chain="ticket"),', START,
      "random pruning keeps the ticket's weights"),
    m("sequential batches shifted", "training/order", "start = (t * self.batch_size) % self.n",
      "start = (t * self.batch_size + 1) % self.n", "tests/plan/test_greydanus_protocol.py",
      "sequential batches are the notebook's slices"),
    m("module count in floating point", "pruning/distribution",
      "return max(min(min_per_layer, n), n - int(round((1.0 - density) * n, 6)))",
      "return max(min(min_per_layer, n), n - int((1.0 - density) * n))", "tests/plan/test_greydanus_protocol.py",
      "a module keeps n - int(s n) for the exact sparsity"),
    m("snapshot one step late", "training/loop", "if t in seg.snapshots:", "if t - 1 in seg.snapshots:",
      "tests/plan/test_greydanus_protocol.py", "previous_iteration scores the weights of that iteration"),
    m("claims' sides swapped", "report/claims", 'sign = 1.0 if direction == "greater" else -1.0\n    if not e.has_interval',
      'sign = -1.0 if direction == "greater" else 1.0\n    if not e.has_interval', "tests/report/test_claims.py",
      "a claim holds when its interval clears the margin on its side"),
]

# Survivors known to be equivalent: the program means the same (name -> why).
EQUIVALENT: dict[str, str] = {}


def dirty() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=normal"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip()


def copy_tree(rev: str, into: Path) -> None:
    archive = into.parent / "tree.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), rev], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    archive.unlink()


def run_tests(tree: Path, tests: tuple[str, ...], timeout: float) -> tuple[bool, str]:
    """(passed, the last lines of the output)."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                             cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"(timed out after {timeout:.0f} s)"
    return run.returncode == 0, "\n".join((run.stdout + run.stderr).strip().splitlines()[-3:])


def interrupted(signum, frame):
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: the copy is restored and deleted on the way out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="HEAD", help="the commit whose code and tests are checked (default HEAD)")
    ap.add_argument("--only", nargs="+", default=[], help="mutants whose names contain one of these")
    ap.add_argument("--list", action="store_true", help="list the mutants and stop")
    ap.add_argument("--timeout", type=float, default=900, help="seconds for one run of a mutant's tests")
    args = ap.parse_args(argv)
    mutants = [x for x in MUTANTS if not args.only or any(o in x.name for o in args.only)]
    if args.list:
        for x in mutants:
            print(f"{x.module:28} {x.name:40} {x.claim}")
        return 0
    if args.rev == "HEAD" and (changes := dirty()):
        print(f"mutation: the work tree has uncommitted changes; commit or stash them first (the mutants are "
              f"tried on a copy of the committed tree):\n{changes}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, interrupted)
    scratch = Path(tempfile.mkdtemp(prefix="lth-mutation-"))
    results: list[tuple[Mutant, str, str]] = []
    started = time.perf_counter()
    try:
        tree = scratch / "tree"
        copy_tree(args.rev, tree)
        for tests in dict.fromkeys(x.tests for x in mutants):  # the tests must pass before anything is broken
            ok, tail = run_tests(tree, tests, args.timeout)
            if not ok:
                print(f"mutation: {' '.join(tests)} fail unmutated at {args.rev}:\n{tail}", file=sys.stderr)
                return 1
        for x in mutants:
            path = tree / "src" / "lth" / f"{x.module}.py"
            original = path.read_text()
            if original.count(x.old) != 1:
                results.append((x, "stale", f"the line is not in {x.module}.py exactly once"))
                continue
            try:
                path.write_text(original.replace(x.old, x.new))
                ok, tail = run_tests(tree, x.tests, args.timeout)
            finally:
                path.write_text(original)
            results.append((x, "survived" if ok else "killed", tail))
            print(f"{'SURVIVED' if ok else 'killed  '} {x.module}: {x.name}", flush=True)
    except KeyboardInterrupt:
        print("mutation: interrupted; the copy is restored and deleted, the work tree was never written",
              file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report(results, args.rev, time.perf_counter() - started)
    return 0


def report(results, rev: str, seconds: float) -> None:
    print(f"\nmutation check of {rev}: {len(results)} mutants in {seconds / 60:.1f} min")
    print(f"{'module':30} {'killed':>6} {'survived':>8}")
    for module in dict.fromkeys(x.module for x, _, _ in results):
        mine = [outcome for x, outcome, _ in results if x.module == module]
        print(f"{module:30} {mine.count('killed'):>6} {mine.count('survived'):>8}"
              + (f"  ({mine.count('stale')} stale)" if "stale" in mine else ""))
    survivors = [(x, outcome) for x, outcome, _ in results if outcome != "killed"]
    print(f"\nsurvivors: {len(survivors)}" + (":" if survivors else ""))
    for x, outcome in survivors:
        why = EQUIVALENT.get(x.name, "no test fails: the claim is untested")
        print(f"  {x.module}: {x.name} ({outcome}; claim: {x.claim}) - {why}")


if __name__ == "__main__":
    sys.exit(main())
