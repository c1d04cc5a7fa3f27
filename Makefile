# refcam: `make demo` and `make test` are all the set-up a fresh machine needs.
PY     ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint unit sysdeps bench clean venv

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(STAMP)

# Debian packages the tests need (chromium for the web-UI test).
sysdeps:
	@sh .ci/system-deps.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: venv
	$(BIN)/pytest -q

test: venv sysdeps lint unit

demo: venv
	$(BIN)/python scripts/demo.py

bench: venv
	$(BIN)/python benchmarks/boot_verify.py
	$(BIN)/python benchmarks/mgmt_api.py
	$(BIN)/python benchmarks/update.py
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) demo-out test-artifacts .pytest_cache .mypy_cache .ruff_cache
