# seenext — `make run` and `make test` work on a fresh clone: they install what they need first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PROTOS := $(wildcard protos/seenext/v1/*.proto)
GEN    := $(PROTOS:.proto=_pb2.py) $(PROTOS:.proto=_pb2_grpc.pyi)
LINTED := server models clients tests bench
BUF    := node_modules/.bin/buf
# buf breaking compares the contract with this commit (the previous one on main)
AGAINST ?= HEAD~1
GRPC_PROTO_INCLUDE = $(shell $(PY) -c "import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), '_proto'))")

.DEFAULT_GOAL := help
.PHONY: help install postgres protos run test lint lint-python lint-types lint-contract bench fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed protos ## create .venv and install seenext with its dev tools

# the messages, their type stubs, the gRPC stubs and (mypy-protobuf) the gRPC stubs' types
protos/seenext/v1/%_pb2.py protos/seenext/v1/%_pb2_grpc.pyi: protos/seenext/v1/%.proto $(VENV)/.installed
	$(PY) -m grpc_tools.protoc -I. -I$(GRPC_PROTO_INCLUDE) --python_out=. --pyi_out=. --grpc_python_out=. \
		--plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc --mypy_grpc_out=quiet:. $<

protos: $(GEN) ## generate the gRPC code from protos/ (never edited by hand)

run: install ## start the server on 127.0.0.1:50051 with the demo retailer (seeded and trained on first run)
	SEENEXT_DEMO=$${SEENEXT_DEMO:-1} $(PY) -m server serve

# The storage and end-to-end suites also run against a throwaway PostgreSQL 15 (tests/postgres.py):
# its Debian package is installed when the binaries are missing (apt-get as root, else through sudo).
# TEST_POSTGRES=0 leaves PostgreSQL out of the tests, and this step with it.
PG_BIN ?= /usr/lib/postgresql/15/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
postgres: ## install PostgreSQL 15 (Debian package `postgresql`) if its binaries are missing
	@test -x $(PG_BIN)/initdb || [ "$$TEST_POSTGRES" = 0 ] || { \
		echo "installing PostgreSQL 15 for the tests: apt-get install postgresql"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; }

test: install postgres ## run the whole test suite (SQLite, and PostgreSQL for storage and e2e suites)
	$(PY) -m pytest

# tests/server/test_dashboard.py drives the system's Chromium (Debian's package; Playwright's own
# browser download is never used): installed when missing.
test: /usr/bin/chromium
/usr/bin/chromium:
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium'

lint: lint-python lint-types lint-contract ## ruff (rules, format), mypy --strict, buf lint and buf breaking

lint-python: install
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

lint-types: install  # the folders and flags are in pyproject.toml
	$(VENV)/bin/mypy

node_modules/.installed: package.json package-lock.json  # buf, pinned by the lock file
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# buf breaking: wire and JSON compatibility with $(AGAINST). A commit from before buf.yaml existed is
# read with today's buf.yaml; a shallow clone fetches it first; with no such commit (the first one, or
# no way to fetch it) there is nothing to compare and it says so.
lint-contract: node_modules/.installed
	$(BUF) lint
	@git rev-parse --verify --quiet '$(AGAINST)^{commit}' >/dev/null \
		|| git fetch --quiet --deepen=1 2>/dev/null || true  # a shallow clone: fetch the previous commit
	@if ! git rev-parse --verify --quiet '$(AGAINST)^{commit}' >/dev/null; then \
		echo "buf breaking: skipped, no commit $(AGAINST) to compare with"; \
	elif git cat-file -e '$(AGAINST):buf.yaml' 2>/dev/null; then \
		echo "$(BUF) breaking --against '.git#ref=$(AGAINST)'"; \
		$(BUF) breaking --against '.git#ref=$(AGAINST)'; \
	else \
		echo "$(BUF) breaking --against '.git#ref=$(AGAINST)' --against-config buf.yaml  # $(AGAINST) has no buf.yaml"; \
		$(BUF) breaking --against '.git#ref=$(AGAINST)' --against-config buf.yaml; \
	fi

bench: install ## benchmarks (not part of test): writes docs/benchmarks.md
	$(PY) -m bench.run

# The long fuzz and fault campaign of issue 10 (docs/reliability.md): tests/fuzz with 1,000 requests and
# 1,000 raw bodies per RPC, ten memory rounds, then tests/server/test_forget_kill.py with 20 kill -9 points.
# Its figures go to var/fuzz/report.md; the knobs are bench/fuzz.py's flags.
fuzz: install ## long fuzz campaign (not part of test): every RPC, memory, Forget under kill -9 (~15 min)
	$(PY) -m bench.fuzz --examples 1000 --memory-rounds 10 --forget-kill-runs 20

clean: ## remove the venv, generated code and local data
	rm -rf $(VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache node_modules
	rm -f protos/seenext/v1/*_pb2.py protos/seenext/v1/*_pb2.pyi protos/seenext/v1/*_pb2_grpc.py*
