# Everything from a fresh clone: `make run` or `make test` creates .venv and installs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_URL ?= $(or $(ACCRUAL_TEST_PG_URL),postgresql://postgres@127.0.0.1:5432/postgres)

.PHONY: install run test test-sqlite test-pg lint lint-imports bench bench-quick clean messages

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/accrual run

lint-imports: $(STAMP)
	$(BIN)/lint-imports

# Style and likely bugs (ruff, pinned in pyproject.toml with its rule set), types
# (mypy: strict on the pure rules, checked bodies elsewhere) and the import contracts.
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The functional tests on two workers (each its own SQLite files or PostgreSQL
# databases); the reliability tests alone afterwards, so that their figures (ops/s,
# latencies) are not measured against the rest of the suite.
FUNCTIONAL := tests/unit tests/integration tests/e2e tests/contract tests/browser
WORKERS ?= 2

test-sqlite: $(STAMP)
	ACCRUAL_TEST_DB=sqlite $(BIN)/pytest -q -n $(WORKERS) $(FUNCTIONAL)
	ACCRUAL_TEST_DB=sqlite $(BIN)/pytest -q tests/reliability

# The database tests again on PostgreSQL, whenever one is reachable. With
# ACCRUAL_REQUIRE_PG=1 an unreachable server fails the run instead.
test-pg: $(STAMP)
	@if $(BIN)/python -c "import psycopg,sys; psycopg.connect('$(PG_URL)', connect_timeout=3).close()" 2>/dev/null \
	   || [ "$$ACCRUAL_REQUIRE_PG" = "1" ]; then \
	  echo "== database tests on PostgreSQL ($(PG_URL))"; \
	  ACCRUAL_TEST_DB=postgresql ACCRUAL_TEST_PG_URL='$(PG_URL)' $(BIN)/pytest -q -m db -n $(WORKERS) $(FUNCTIONAL) \
	  && ACCRUAL_TEST_DB=postgresql ACCRUAL_TEST_PG_URL='$(PG_URL)' $(BIN)/pytest -q -m db tests/reliability; \
	else \
	  echo "== PostgreSQL not reachable at $(PG_URL): database tests ran on SQLite only"; \
	fi

# The reliability figures are printed even when a test failed (then the run still fails).
test: $(STAMP)
	@status=0; $(MAKE) --no-print-directory lint test-sqlite test-pg || status=$$?; \
	$(BIN)/python -m tests.reliability.show_report; exit $$status

# The pages' texts: extract each package's into a catalog template (not kept) and merge
# it into the package's catalogs; then translate the new entries in
# locale/zh/LC_MESSAGES/messages.po (tests/unit/test_page_catalogs.py fails on any missing).
PAGE_PACKAGES := src/accrual/web src/accrual/console/pages src/accrual/billing/pages \
                 src/accrual/console/operator_pages src/accrual/billing/operator_pages
messages: $(STAMP)
	@pot=$$(mktemp -d); for pkg in $(PAGE_PACKAGES); do \
	  [ -d $$pkg ] || continue; \
	  $(BIN)/pybabel --quiet extract --no-wrap --no-location --sort-output -k N_ --project=Accrual \
	    -F babel.cfg -o $$pot/messages.pot $$pkg || exit 1; \
	  if [ -f $$pkg/locale/zh/LC_MESSAGES/messages.po ]; then \
	    $(BIN)/pybabel --quiet update --no-wrap --no-fuzzy-matching --ignore-pot-creation-date \
	      -i $$pot/messages.pot -d $$pkg/locale -l zh || exit 1; \
	  else $(BIN)/pybabel --quiet init --no-wrap -i $$pot/messages.pot -d $$pkg/locale -l zh || exit 1; fi; \
	done; rm -r $$pot

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/day_close.py

bench-quick: $(STAMP)
	$(BIN)/python bench/ingest.py --quick
	$(BIN)/python bench/day_close.py --quick

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
