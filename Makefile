# The two commands of the README: `make run` and `make test`. Everything else
# they need (virtual environment, dependencies) is set up on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup run test test-slow test-fast lint fmt bench packages install-test repo repo-publish repo-test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## run: start the server on its embedded defaults (127.0.0.1:18180, data/db, data/wal)
run: setup
	$(BIN)/stemedb serve

## test: lint, type-check and run the whole test suite
test: setup lint
	$(BIN)/pytest -q

## test-slow: the long tests left out of `make test` (soak, kill series); CI runs them too
test-slow: setup
	$(BIN)/pytest -q -m slow

test-fast: setup
	$(BIN)/pytest -q -x

## test-repeat: flake evidence (issue 15): lint once, then the whole suite N times in a
## row (default 20), stopping at the first failure; one line per run (number, passed/
## failed counts, duration) in build/test-repeat/<time>.log. TEST_ARGS goes to pytest.
N ?= 20
.PHONY: test-repeat
test-repeat: setup lint
	$(BIN)/python tools/test_repeat.py --runs $(N) $(TEST_ARGS)

## console-screenshots: regenerate docs/img/console-*.png (a throwaway server + Debian chromium)
.PHONY: console-screenshots
console-screenshots: setup
	$(BIN)/python -m tests.console.screenshots

## test-waitress-latest: the waitress canaries (tests/http) and the end-to-end tests
## against the newest waitress release, in a venv of their own. Needs the package
## registry, so it is not part of `make test`; run it before taking a waitress
## release (docs/architecture.md, "Taking a waitress release").
WAITRESS_VENV := .venv-waitress-latest
.PHONY: test-waitress-latest
test-waitress-latest:
	$(PYTHON) -m venv $(WAITRESS_VENV)
	$(WAITRESS_VENV)/bin/pip install --quiet --upgrade pip
	$(WAITRESS_VENV)/bin/pip install --quiet -e '.[dev]'
	$(WAITRESS_VENV)/bin/pip install --quiet --upgrade waitress
	$(WAITRESS_VENV)/bin/python -c "from importlib.metadata import version; print('waitress', version('waitress'))"
	$(WAITRESS_VENV)/bin/pytest -q -p no:cacheprovider tests/http tests/e2e

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python -m bench

packages:
	bash packaging/build.sh

install-test:
	bash packaging/test-install.sh

## repo: build the packages, then publish them into the signed APT and RPM
## repositories in dist/repo (needs STEMEDB_REPO_GNUPGHOME or STEMEDB_REPO_KEY_FILE;
## see docs/operations/packaging.md)
repo:
	@test -n "$$STEMEDB_REPO_GNUPGHOME$$STEMEDB_REPO_KEY_FILE" || { echo "make repo: no signing key: set STEMEDB_REPO_GNUPGHOME or STEMEDB_REPO_KEY_FILE (docs/operations/packaging.md, 'Package repositories')" >&2; exit 1; }
	$(MAKE) --no-print-directory packages
	$(MAKE) --no-print-directory repo-publish

## repo-publish: publish already built packages (STEMEDB_REPO_PACKAGES, default the
## pyproject version in dist/) without rebuilding them
repo-publish:
	bash packaging/repo.sh $(STEMEDB_REPO_PACKAGES)

## repo-test: the repositories used by apt and dnf (root; after install-test)
repo-test:
	bash packaging/test-repo.sh

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
