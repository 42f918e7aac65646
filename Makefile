# Two commands for a fresh machine:  make run   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint unit setup clean bench bundle release-check i18n

# torch goes in first, pinned: a CPU wheel of 2.13.0 is on local disk on our build machines,
# and an unpinned torch would pull several GB of CUDA. pyproject keeps torch>=2.3 so gardeners
# with GPUs get CUDA builds.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

# The main job: a local demo village of 3 nodes (the tray where a display exists).
run: $(STAMP)
	$(BIN)/grove demo --villages 3

lint: $(STAMP)
	$(BIN)/ruff check core app tests bench docs
	$(BIN)/mypy
	$(BIN)/lint-imports

# Two workers (CI has 2 cores): most real-village tests wait on the network, not the CPU;
# the whole suite took 618 s this way against 1,100 to 1,700 s in one process.
# --dist loadgroup: the heaviest real-network tests (xdist_group "heavy-network": 16 villages
# averaging 10 MB, the SWARM trainings and generation, 8 villages counting themselves) run one
# after another on one worker, never beside each other: two of them together on 2 cores made
# each several times slower than alone and past its own deadlines.
unit: $(STAMP)
	@$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest: no tests were collected"; rc=0; fi; exit $$rc

test: lint unit

# The German catalogue: every tr("...") in app/ and core/ into the .ts (Qt's lupdate; new
# strings arrive unfinished, for a translator), then compiled for the app (lrelease).
# tests/app/test_i18n.py fails while a string is missing, unfinished or the .qm is stale.
I18N_SOURCES = $(shell git ls-files 'app/*.py' 'core/*.py')
i18n: $(STAMP)
	$(BIN)/pyside6-lupdate $(I18N_SOURCES) -locations none -no-obsolete \
	  -ts resources/i18n/grove_de.ts
	$(BIN)/pyside6-lrelease resources/i18n/grove_de.ts -qm resources/i18n/grove_de.qm

# The frozen one-folder build (dist/grove/grove); installers/README.md has the rest.
bundle: $(STAMP)
	$(BIN)/pyinstaller --noconfirm --log-level WARN build.spec

# CI's release rehearsal: throwaway key, build, package, sign, verify, tamper, install, smoke.
release-check: $(STAMP)
	installers/linux/ci-check

clean:
	rm -rf $(VENV) build dist artifacts .pytest_cache .mypy_cache .ruff_cache
