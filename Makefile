# refcam: `make demo` and `make test` are all the set-up a fresh machine needs.
PY     ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint unit sysdeps nodedeps bench clean venv

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	# onvif-python installs into the same top-level `onvif` package as onvif-zeep-async:
	# it gets its own folder, put first on PYTHONPATH by tests/device/test_onvif_clients.py
	$(BIN)/pip install -q --no-deps --target $(VENV)/onvif-python 'onvif-python==0.4.7'
	# ipycam, a camera no one here wrote, for tests/integration/test_probe_ipycam.py. Without its
	# dependencies: it needs numpy and cv2, which the headless OpenCV above provides; its own
	# opencv-python would install a second cv2 over it (and into the firmware's SBOM).
	$(BIN)/pip install -q --no-deps 'ipycam>=1.3,<2'
	touch $@

venv: $(STAMP)

# Debian packages the tests need (chromium for the web-UI test, node for the CSAF validator).
sysdeps:
	@sh .ci/system-deps.sh

# secvisogram's CSAF validator (npm), pinned by its package-lock.json, in a test-local folder.
CSAF_VALIDATOR := tests/update_server/csaf_validator
$(CSAF_VALIDATOR)/node_modules/.installed: $(CSAF_VALIDATOR)/package-lock.json
	npm ci --prefix $(CSAF_VALIDATOR) --no-audit --no-fund --silent
	touch $@

nodedeps: sysdeps $(CSAF_VALIDATOR)/node_modules/.installed

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: venv
	$(BIN)/pytest -q

test: venv sysdeps nodedeps lint unit

demo: venv
	$(BIN)/python scripts/demo.py

bench: venv
	$(BIN)/python benchmarks/boot_verify.py
	$(BIN)/python benchmarks/mgmt_api.py
	$(BIN)/python benchmarks/update.py
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) demo-out test-artifacts .pytest_cache .mypy_cache .ruff_cache $(CSAF_VALIDATOR)/node_modules
