# Lifeboat: `make demo` opens the demo sandbox, `make test` runs every test.
# Both bootstrap what they need: a .venv with the project, and (for tests) system packages.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# command -> Debian package that provides it, for the real servers the tests start
SYSTEM_DEPS := /usr/sbin/sshd:openssh-server ssh:openssh-client etcd:etcd-server \
               etcdctl:etcd-client tmux:tmux zstd:zstd

.PHONY: demo test lint screenshots system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

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

lint: $(STAMP)
	$(BIN)/ruff check engine tui themes tests bench screenshots
	$(BIN)/ruff format --check engine tui themes tests bench screenshots

test: $(STAMP) system-deps lint
	$(BIN)/pytest

screenshots: $(STAMP)
	$(BIN)/python screenshots/generate.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
