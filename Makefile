# Two entry points: `make run` (the main job on the default config) and `make test`.
# Each installs what it needs on first use: uv (from PyPI) and the locked environment (.venv).
UV := python3 -m uv
VENV := .venv/.synced

.PHONY: run test test-quick docs mutation setup clean
setup: $(VENV)

$(VENV): pyproject.toml uv.lock
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv
	@echo "lth: installing the locked environment into .venv (first time: a few minutes, about 6 GB)"
	$(UV) sync --frozen --compile-bytecode --quiet
	@touch $@

# Quiet by default: one line per finished job and a progress bar (in a terminal); errors in full.
# `make run VERBOSE=1` shows Snakemake's own output with every command.
run: $(VENV)
	$(UV) run --frozen snakemake --cores all $(if $(VERBOSE),--printshellcmds,--logger rich)

test: $(VENV)
	$(UV) run --frozen pytest

test-quick: $(VENV)
	$(UV) run --frozen pytest -m "not slow"

# The documentation site (docs/, mkdocs.yml) into site/; --strict: a broken link, a page missing from
# the navigation or an API reference that does not resolve fails the build, naming the page.
docs: $(VENV)
	NO_MKDOCS_2_WARNING=1 $(UV) run --frozen mkdocs build --strict

# Does a test fail when an exactness claim breaks? Mutants of the committed tree, each against its
# tests (minutes; not part of `make test`): benchmarks/mutation.py.
mutation: $(VENV)
	$(UV) run --frozen python benchmarks/mutation.py

clean:
	rm -rf .venv .snakemake results/*/ reports site

# A colleague's copy of shared results (docs/guides/dvc.md, "Retrieve it"): fetch them, mark the
# pulled runs up to date (a pull gives every file a fresh modification time), then regenerate the
# summaries and reports from them. Trains nothing.
.PHONY: pull
pull: $(VENV)
	DVC_NO_ANALYTICS=1 $(UV) run --frozen dvc pull
	$(UV) run --frozen snakemake --touch --forceall runs --quiet all
	$(UV) run --frozen snakemake --cores all --logger rich
