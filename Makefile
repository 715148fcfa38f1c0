# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint venv clean browser-deps

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The main job end to end on the embedded database (or GRAPHREC_DATABASE_URL when set).
demo: venv
	$(BIN)/graphrec db init
	$(BIN)/graphrec demo-data --users 5000 --goods 100000 --seed 0 --replace
	$(BIN)/graphrec audit
	$(BIN)/graphrec build-graph
	$(BIN)/graphrec train --promote
	$(BIN)/graphrec recommend
	@echo
	@echo "demo finished. Where to look:"
	@echo "  artifacts/graphs/     the graph artifact (manifest.json has the counts)"
	@echo "  artifacts/models/     the trained model (CURRENT names the one in use)"
	@echo "  graphrec db status    what the database holds; picks are read with SELECT * FROM for_you(<user_id>, 20)"
	@echo "  graphrec serve        then open http://127.0.0.1:8000/vibe (token: \$$GRAPHREC_SERVE_TOKEN)"

# Headless Chromium for the page tests; installed from Debian when missing and we are root.
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "chromium not installed: browser tests will be skipped"

test: venv browser-deps
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check graphrec etl training serving evaluation tests benchmarks
	$(BIN)/mypy graphrec etl training serving evaluation
	$(BIN)/lint-imports

BENCHES := $(patsubst benchmarks/%.py,%,$(filter-out benchmarks/_%,$(wildcard benchmarks/*.py)))
bench: venv
	@for b in $(BENCHES); do echo "== $$b"; $(BIN)/python benchmarks/$$b.py || exit 1; done

bench-%: venv
	$(BIN)/python benchmarks/$(subst -,_,$*).py

clean:
	rm -rf artifacts reports test-output .pytest_cache
