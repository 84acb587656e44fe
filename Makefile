# Lifeboat: `make demo` opens the demo sandbox, `make test` runs every test.
# Both bootstrap what they need: a .venv holding exactly what uv.lock says, and (for tests)
# system packages. `make lock` upgrades uv.lock on purpose.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# uv itself comes from PyPI through pip, pinned, into a venv of its own (uv sync would
# otherwise remove it from .venv as a package the lock does not name).
UV_VERSION := 0.13.9
UV := .uv/bin/uv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
# command -> Debian package that provides it, for the real servers the tests start
SYSTEM_DEPS := /usr/sbin/sshd:openssh-server ssh:openssh-client etcd:etcd-server \
               etcdctl:etcd-client tmux:tmux zstd:zstd age:age \
               redis-server:redis-server redis-cli:redis-tools pg_ctlcluster:postgresql

.PHONY: demo test lint lock screenshots system-deps wheel clean

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet 'uv==$(UV_VERSION)'

$(STAMP): pyproject.toml uv.lock $(UV)
	$(UV) sync --quiet --locked --compile-bytecode --python $(PYTHON) --extra test --group lint
	touch $(STAMP)

# Upgrade every locked package to the newest release the ranges in pyproject.toml allow.
# Run it on purpose, then `make test`, and commit uv.lock with the snapshots it changes.
lock: $(UV)
	$(UV) lock --upgrade

demo: $(STAMP)
	$(BIN)/lifeboat demo

system-deps:
	@missing=""; \
	for dep in $(SYSTEM_DEPS); do \
	  cmd=$${dep%%:*}; pkg=$${dep##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "make test needs these system packages:$$missing"; \
	    echo "install them with: sudo apt-get install$$missing   (or run make test as root)"; \
	    exit 1; \
	  fi; \
	fi

# Style, the import contracts (pyproject.toml [tool.importlinter], README "Architecture"),
# then types (mypy with the pydantic plugin: engine strict, tui checked).
lint: $(STAMP)
	$(BIN)/ruff check engine tui themes tests bench screenshots
	$(BIN)/ruff format --check engine tui themes tests bench screenshots
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

# Bytecode is compiled up front: with PYTHONDONTWRITEBYTECODE set, every `lifeboat` the tests
# start would otherwise compile the project again. Three pytest-xdist workers on two cores:
# most tests spend their time waiting on servers and subprocesses, so a third worker keeps
# the cores busy (each worker starts its own servers on random ports).
test: $(STAMP) system-deps lint
	$(BIN)/python -m compileall -q engine tui themes tests >/dev/null
	$(BIN)/pytest -n 3

# The installable package (dist/lifeboat-*.whl): `pipx install dist/lifeboat-*.whl`.
wheel: $(UV)
	$(UV) build --wheel --out-dir dist

screenshots: $(STAMP)
	$(BIN)/python screenshots/generate.py

clean:
	rm -rf $(VENV) .uv .pytest_cache .ruff_cache
