# seenext — `make run` and `make test` work on a fresh clone: they install what they need first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PROTOS := $(wildcard protos/seenext/v1/*.proto)
GEN    := $(PROTOS:.proto=_pb2.py)
GRPC_PROTO_INCLUDE = $(shell $(PY) -c "import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), '_proto'))")

.DEFAULT_GOAL := help
.PHONY: help install protos run test lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed protos ## create .venv and install seenext with its dev tools

protos/seenext/v1/%_pb2.py: protos/seenext/v1/%.proto $(VENV)/.installed
	$(PY) -m grpc_tools.protoc -I. -I$(GRPC_PROTO_INCLUDE) --python_out=. --pyi_out=. --grpc_python_out=. $<

protos: $(GEN) ## generate the gRPC code from protos/ (never edited by hand)

run: install ## start the server on 127.0.0.1:50051 with the demo retailer (seeded and trained on first run)
	SEENEXT_DEMO=$${SEENEXT_DEMO:-1} $(PY) -m server serve

test: install ## run the whole test suite
	$(PY) -m pytest

lint: install ## ruff and mypy
	$(VENV)/bin/ruff check server models clients tests bench
	$(VENV)/bin/mypy server models clients bench

bench: install ## benchmarks (not part of test): writes docs/benchmarks.md
	$(PY) -m bench.run

clean: ## remove the venv, generated code and local data
	rm -rf $(VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache
	rm -f protos/seenext/v1/*_pb2.py protos/seenext/v1/*_pb2.pyi protos/seenext/v1/*_pb2_grpc.py
