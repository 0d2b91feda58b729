# pycontain: two commands do all the set-up on a fresh Debian machine, as root:
#   make demo   installs, builds the offline busybox image, starts the daemon, tells the story
#   make test   installs what the tests need and runs the whole suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := busybox-static runc skopeo umoci python3 python3-venv python3-dev gcc \
                libcap-dev libseccomp-dev iproute2 nftables procps psmisc kmod docker-registry apache2-utils
IMAGES := rootfs/out/busybox.tar rootfs/out/multilayer.tar

.PHONY: setup system-packages docker-client venv images demo test unit lint bench clean

setup: system-packages venv

system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@$(MAKE) --no-print-directory docker-client

# The docker client (tests/e2e/test_docker_cli.py, bench/) only ever talks to pycontaind.
# Debian's docker.io brings /usr/bin/docker; its dockerd must not run: policy-rc.d keeps
# the package from starting it, and its units are disabled.
docker-client:
	@if ! command -v docker >/dev/null 2>&1; then \
		echo "installing: docker.io (for its docker client)"; \
		policy=/usr/sbin/policy-rc.d; own_policy=; \
		if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' > $$policy; \
			chmod 755 $$policy; own_policy=1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends docker.io >/dev/null; status=$$?; \
		if [ -n "$$own_policy" ]; then rm -f $$policy; fi; \
		if command -v systemctl >/dev/null 2>&1; then \
			systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true; \
		fi; \
		exit $$status; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

images: venv
	$(PY) rootfs/build.py --out rootfs/out

demo: setup images
	bash scripts/demo.sh

test: setup images
	$(VENV)/bin/pytest -q tests

unit: venv
	$(VENV)/bin/pytest -q tests/unit

lint: venv
	$(VENV)/bin/ruff check pycontain tests rootfs bench
	$(VENV)/bin/mypy

bench: setup images
	$(PY) bench/run.py

clean:
	rm -rf rootfs/out build *.egg-info
