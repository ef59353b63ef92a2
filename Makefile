# prisma_ops.migrate developer and CI entry points. See docs/development.md.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV        := .venv
BIN         := $(CURDIR)/$(VENV)/bin
# Tools from .venv win over anything else on PATH, in recipes and in the tests they start.
export PATH := $(BIN):$(PATH)

# pytest-xdist workers. The suite mostly waits on PostgreSQL and the Prisma CLI (node), so more
# workers than the 2 cores pay off: measured on 2 cores, serial 80 s, -n 2 73 s, -n 4 56 s.
PYTEST_WORKERS ?= 4
PYTEST_ARGS    ?=
SANITY_ARGS    ?=
DIST_DIR       := .build/dist

.PHONY: help setup lint ansible-lint sanity changelog-lint test pytest demo lab lab-down test-lab build clean

help:
	@echo "make setup         Debian packages, .venv, Prisma CLI oracle, .collections link (idempotent)"
	@echo "make lint          ansible-lint (production profile), changelog lint, ansible-test sanity"
	@echo "make test          setup + lint + pytest over tests/ + the lab tests and Molecule (what .ci/run runs)"
	@echo "make pytest        pytest only (PYTEST_ARGS='-k name' PYTEST_WORKERS=0 to run serially)"
	@echo "make sanity        ansible-test sanity only (SANITY_ARGS='--test pylint')"
	@echo "make build         build the collection tarball into $(DIST_DIR)"
	@echo "make demo          end-to-end recovery demo"
	@echo "make lab           start the lab: SSH test hosts in containers, lab/inventory.yml (docs/lab.md)"
	@echo "make lab-down      remove the lab containers (keeps the cached images)"
	@echo "make test-lab      start the lab and run its tests (pytest -m lab)"
	@echo "make clean         remove .build, tests/output and caches (keeps .venv)"

setup:
	@scripts/setup.sh

# --keep-going: every linter reports before the target fails.
lint: setup
	@$(MAKE) --no-print-directory --keep-going ansible-lint changelog-lint sanity

ansible-lint:
	@echo "== ansible-lint (profile: production)"
	ansible-lint --offline

changelog-lint:
	@echo "== antsibull-changelog lint"
	antsibull-changelog lint

sanity:
	@echo "== ansible-test sanity (no ignore file)"
	scripts/sanity.sh $(SANITY_ARGS)

# The suite on throwaway clusters (in parallel), then the lab's tests and the Molecule scenario
# (serially: they share the lab's hosts).
test: lint
	@$(MAKE) --no-print-directory pytest
	@$(MAKE) --no-print-directory test-lab

# pytest exits 5 when it collects no tests; that is a failure here and nothing masks it.
pytest:
	@echo "== pytest"
	pytest $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS)) $(PYTEST_ARGS)

# One local host (ansible_connection=local), a throwaway PostgreSQL, a real Prisma P3009 (scripts/demo.py).
demo: setup
	@$(BIN)/python scripts/demo.py

# The lab needs the Prisma CLI oracle (make setup) for the hosts' node_modules.
lab: setup
	@scripts/lab.sh up

lab-down:
	@scripts/lab.sh down

# The lab's tests over real SSH hosts. Two workers, one file each (--dist loadfile), since the files use
# separate hosts: the fault campaign on the lab_faults hosts (test_faults.py) beside the lab group's
# tests, the Molecule scenario last (test_lab.py).
test-lab: lab
	@scripts/lab.sh up faults
	@echo "== pytest -m lab (the fault campaign, the lab tests and Molecule)"
	pytest -m lab -n 2 --dist loadfile $(PYTEST_ARGS)

build: setup
	@mkdir -p $(DIST_DIR)
	ansible-galaxy collection build --force --output-path $(DIST_DIR)

clean:
	rm -rf .build tests/output .pytest_cache changelogs/.plugin-cache.yaml
	find . -path ./.venv -prune -o -path ./.collections -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
