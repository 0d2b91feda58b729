# pycontain: two commands do all the set-up on a fresh Debian machine, as root:
#   make demo   installs, builds the offline busybox image, starts the daemon, tells the story
#   make test   installs what the tests need and runs the whole suite
#   make vm-test  the cgroup v2 lane: Debian's kernel in QEMU runs the cgroup and lifecycle tests
#   make install  pycontain and pycontaind in /usr/local/bin, the pycontain group, the systemd unit
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := busybox-static runc skopeo umoci python3 python3-venv python3-dev gcc \
                libcap-dev libseccomp-dev iproute2 nftables procps psmisc kmod docker-registry apache2-utils
VM_PACKAGES := qemu-system-x86 vagrant vagrant-libvirt
IMAGES := rootfs/out/busybox.tar rootfs/out/multilayer.tar
PREFIX ?= /usr/local
UNIT_DIR ?= /etc/systemd/system
# vagrant keeps its state inside the checkout (build/ is ignored by git)
export VAGRANT_HOME ?= $(CURDIR)/build/vagrant.d

.PHONY: setup system-packages docker-client vm-packages venv images demo test unit lint bench \
        clean install vm-test vagrant-validate

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

# QEMU, vagrant and its libvirt plugin (for `vagrant validate`) for the VM lane; without
# recommends (no GUI, no libvirt daemon, no firmware the lane does not boot)
vm-packages:
	@missing=$$(for p in $(VM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing >/dev/null; \
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

# The cgroup v2 tests need a v2 host: they run in the VM lane (make vm-test), not here.
test: setup images
	$(VENV)/bin/pytest -q -m "not cgroup_v2" tests

# With the libvirt plugin installed the provider's block is validated too; no provider runs.
vagrant-validate: vm-packages
	VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate
	rm -rf .vagrant

# Boots Debian's kernel under QEMU (KVM when a probe boot works, else TCG) and runs the
# cgroup v2, cgroup and lifecycle tests there; exits with the guest's pytest status.
vm-test: setup vm-packages images vagrant-validate
	$(PY) vm/vmtest.py

# What the Vagrant VM runs; any Debian machine with systemd can too.
install: setup images
	install -d $(DESTDIR)$(PREFIX)/bin
	ln -sfn $(CURDIR)/$(VENV)/bin/pycontain $(DESTDIR)$(PREFIX)/bin/pycontain
	ln -sfn $(CURDIR)/$(VENV)/bin/pycontaind $(DESTDIR)$(PREFIX)/bin/pycontaind
	install -D -m 0644 packaging/pycontaind.service $(DESTDIR)$(UNIT_DIR)/pycontaind.service
	@if [ -z "$(DESTDIR)" ]; then \
		getent group pycontain >/dev/null || groupadd --system pycontain; \
		if [ -d /run/systemd/system ]; then \
			systemctl daemon-reload && systemctl enable --now pycontaind; \
		else \
			echo "no systemd here: start the daemon with: sudo $(PREFIX)/bin/pycontaind &"; \
		fi; \
	fi

unit: venv
	$(VENV)/bin/pytest -q tests/unit

lint: venv
	$(VENV)/bin/ruff check pycontain tests rootfs bench vm
	$(VENV)/bin/mypy

bench: setup images
	$(PY) bench/run.py

clean:
	rm -rf rootfs/out build *.egg-info
