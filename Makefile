# pcflow: `make demo` runs the workflow on the local MPC stand-ins; `make test` runs the tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
UV_VERSION := 0.13.9
UV := .venv-tools/bin/uv
DEMO_CONFIG := config/demo.yaml
CORES ?= 2
SMK := .venv/bin/snakemake --configfile $(DEMO_CONFIG) --cores $(CORES)
DAG_DIR ?= docs/dag
SANDBOX_ENV = eval "$$(.venv/bin/pcflow sandbox env)"

.PHONY: help install demo test test-unit dag plan lint bench lock sandbox-up sandbox-down clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(UV):
	python3 -m venv .venv-tools && .venv-tools/bin/pip install -q uv==$(UV_VERSION)

.venv/.installed: envs/requirements.lock pyproject.toml snakemake-executor-plugin-kbatch/pyproject.toml $(UV)
	$(UV) venv -q --allow-existing --python 3.11 .venv
	$(UV) pip sync -q --python .venv/bin/python --require-hashes --compile-bytecode envs/requirements.lock
	$(UV) pip install -q --python .venv/bin/python --no-deps -e . -e ./snakemake-executor-plugin-kbatch
	$(PY) -m compileall -q src snakemake-executor-plugin-kbatch/src
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

.venv-pgstac/.installed: envs/pgstac-requirements.lock $(UV)
	UV=$(UV) bash scripts/setup-pgstac-venv.sh
	touch $@

install: .venv/.installed node_modules/.installed .venv-pgstac/.installed  ## locked envs (.venv, .venv-pgstac) + Azurite

sandbox-up: install  ## start the local MPC stand-ins (Azurite, STAC API, SAS endpoint, Dask Gateway, kbatch)
	.venv/bin/pcflow sandbox up --service gateway --service kbatch

sandbox-down:  ## stop them
	.venv/bin/pcflow sandbox down

demo: sandbox-up  ## run the workflow on the demo config against the sandbox; prints where results are
	$(SANDBOX_ENV) && $(SMK)
	$(SANDBOX_ENV) && $(SMK) --report results/report.html
	@echo; echo "Figures: $$(ls results/*/figures/*.png | tr '\n' ' ')"; echo "Report:  results/report.html"

test: install  ## unit, plugin, integration (real local services), chaos and end-to-end tests, slow ones last
	.venv/bin/pytest tests/unit snakemake-executor-plugin-kbatch/tests tests/integration tests/chaos tests/e2e

test-unit: install  ## unit tests only (no services; the kbatch plugin's mocked-API tests too)
	.venv/bin/pytest tests/unit snakemake-executor-plugin-kbatch/tests

dag: .venv/.installed node_modules/.installed  ## DAG of the demo plan as SVG and Mermaid in $(DAG_DIR) (no services, no graphviz)
	bash scripts/dag.sh $(DAG_DIR) $(SMK)

plan: .venv/.installed  ## dry run of the demo config
	$(SMK) -n

lint: .venv/.installed  ## ruff, snakefmt, `snakemake --lint` and the per-rule envs against the lock
	.venv/bin/ruff check src tests scripts bench
	.venv/bin/ruff format --check src tests scripts bench
	.venv/bin/snakefmt --check Snakefile rules
	$(SMK) --lint
	$(PY) scripts/rule_envs.py --check

bench: sandbox-up  ## benchmarks (print their figures; last line is JSON)
	$(SANDBOX_ENV) && for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lock: $(UV)  ## re-resolve envs/requirements.lock from envs/requirements.in
	$(UV) pip compile -q --python-version 3.11 --prerelease=if-necessary --generate-hashes \
		--override envs/overrides.txt envs/requirements.in -o envs/requirements.lock

clean:  ## remove local results and logs (not the staged data)
	rm -rf results logs .snakemake
