#!/usr/bin/env python3
"""The cgroup v2 test lane: boot Debian's kernel in QEMU and run the suite's cgroup tests.

Steps (everything it downloads or builds stays in ``build/vm/`` of the checkout):

1. Debian's kernel: ``apt-get download`` of linux-image-amd64's kernel package,
   ``dpkg-deb -x`` into ``build/vm/kernel`` (never the host's /boot), then
   ``depmod -b`` there to get modules.dep.
2. An initramfs: busybox-static, ``vm/initramfs-init.sh`` as /init, and the kernel
   modules the guest needs (9p over virtio, overlay, veth, bridge, nf_tables and the
   nft expressions the NAT rules use) with their dependencies from modules.dep,
   listed in load order.  Written as a newc cpio archive by this script.
3. KVM is probed first (a boot that powers off at once, under a timeout: /dev/kvm
   may be missing, or hang); TCG (``-accel tcg``) otherwise.
4. The guest: 2 CPUs, 2 GiB, no network device (``-nic none``), the host's / shared
   read-only over virtio 9p.  It runs with cgroup2 at /sys/fs/cgroup and every
   controller enabled, runs pytest with ``build/vm/pytest-args`` and reports the
   summary line and exit status on its serial console, which is this script's
   stdout; then it powers off.  This script exits with the guest's pytest status
   (125 when the guest did not report one).
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VM_DIR = REPO / "vm"
CACHE = REPO / "build" / "vm"
KERNEL_ROOT = CACHE / "kernel"
KERNEL_META_PACKAGE = "linux-image-amd64"

WANTED_MODULES = (
    "virtio_pci", "9pnet_virtio", "9p", "virtio_rng", "overlay", "veth", "bridge",
    "crc32c_generic",
    "nf_tables", "nft_chain_nat", "nft_nat", "nft_masq", "nft_ct", "nft_fib_inet",
    "nft_fib_ipv4", "nft_fib_ipv6", "nft_redir", "nft_reject_inet", "nft_compat",
)
"""The guest's modules (their dependencies come from modules.dep; crc32c_generic is
libcrc32c's soft dependency, which modules.dep does not list)."""

DEFAULT_TESTS = (
    "tests/e2e/test_cgroup_v2.py",
    "tests/integration/test_cgroups_host.py",
    "tests/e2e/test_lifecycle.py",
    "tests/e2e/test_limits_and_cleanup.py",
)

SUMMARY_MARK = "PYCONTAIN-VM-SUMMARY "
EXIT_MARK = "PYCONTAIN-VM-EXIT "
PROBE_MARK = "PYCONTAIN-VM-PROBE-OK"
NO_RESULT = 125


class VmTestError(Exception):
    """A step of the lane failed before the guest could report."""


def log(message: str) -> None:
    print(f"vm-test: {message}", flush=True)


def run(command: list[str], cwd: Path | None = None,
        capture: bool = False) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, check=True, text=True, cwd=cwd, capture_output=capture)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise VmTestError(f"{' '.join(command)}: {exc}") from exc


def kernel_package() -> str:
    """The versioned package linux-image-amd64 depends on (linux-image-6.1.0-NN-amd64)."""
    depends = run(["apt-cache", "depends", KERNEL_META_PACKAGE], capture=True).stdout
    for line in depends.splitlines():
        name = line.strip().removeprefix("Depends:").strip()
        if line.strip().startswith("Depends:") and name.startswith("linux-image-"):
            return name
    raise VmTestError(f"apt-cache depends {KERNEL_META_PACKAGE}: no linux-image-* dependency")


def fetch_kernel() -> tuple[Path, Path]:
    """The kernel image and its module directory, downloaded and unpacked once into the cache."""
    if not list(KERNEL_ROOT.glob("boot/vmlinuz-*")):
        CACHE.mkdir(parents=True, exist_ok=True)
        package = kernel_package()
        log(f"downloading {package} into {CACHE}")
        for old in CACHE.glob("linux-image-*.deb"):
            old.unlink()
        run(["apt-get", "download", "-q", package], cwd=CACHE)
        debs = list(CACHE.glob(f"{package}_*.deb"))
        if len(debs) != 1:
            raise VmTestError(f"apt-get download {package}: expected one .deb, found {debs}")
        staging = CACHE / "kernel.partial"
        shutil.rmtree(staging, ignore_errors=True)
        run(["dpkg-deb", "-x", str(debs[0]), str(staging)])
        shutil.rmtree(KERNEL_ROOT, ignore_errors=True)
        staging.rename(KERNEL_ROOT)
    vmlinuz = sorted(KERNEL_ROOT.glob("boot/vmlinuz-*"))[-1]
    version = vmlinuz.name.removeprefix("vmlinuz-")
    modules = KERNEL_ROOT / "lib" / "modules" / version
    if not (modules / "modules.dep").exists():
        run(["depmod", "-b", str(KERNEL_ROOT), version])
    return vmlinuz, modules


def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """modules.dep as {module name: (its .ko path, the .ko paths it depends on)}."""
    table: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        path, separator, depends = line.partition(":")
        if separator:
            table[module_name(path)] = (path, depends.split())
    return table


def module_name(path: str) -> str:
    """kernel/net/9p/9pnet_virtio.ko -> 9pnet_virtio (modprobe treats - and _ alike)."""
    return Path(path).name.split(".ko")[0].replace("-", "_")


def load_order(table: dict[str, tuple[str, list[str]]], wanted: Iterable[str]) -> list[str]:
    """``wanted`` and everything they depend on, each after its dependencies.

    Raises:
        VmTestError: a wanted module is not in modules.dep (built in modules are not listed
            there and are skipped by the caller).
    """
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        if name not in table:
            raise VmTestError(f"module {name} is not in modules.dep")
        for dependency in table[name][1]:
            visit(module_name(dependency))
        order.append(name)

    for name in wanted:
        visit(name)
    return order


def builtin_modules(modules: Path) -> set[str]:
    text = (modules / "modules.builtin").read_text()
    return {module_name(line) for line in text.split()}


def cpio_entries(root: Path) -> Iterator[tuple[str, os.stat_result, bytes]]:
    """Every path under ``root`` (parents first) with its lstat and content."""
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            path = Path(directory) / name
            info = path.lstat()
            if path.is_symlink():
                data = os.readlink(path).encode()
            elif path.is_file():
                data = path.read_bytes()
            else:
                data = b""
            yield str(path.relative_to(root)), info, data


def write_newc_cpio(root: Path, out: Path) -> None:
    """The tree ``root`` as a newc ("070701") cpio archive, the kernel's initramfs format."""

    def header(inode: int, mode: int, size: int, name: str) -> bytes:
        fields = [inode, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
        text = "070701" + "".join(f"{value:08x}" for value in fields) + name + "\0"
        return text.encode() + b"\0" * (-len(text) % 4)

    chunks: list[bytes] = []
    for inode, (name, info, data) in enumerate(cpio_entries(root), start=1):
        chunks.append(header(inode, info.st_mode, len(data), name))
        chunks.append(data + b"\0" * (-len(data) % 4))
    chunks.append(header(0, 0, 0, "TRAILER!!!"))
    partial = out.with_suffix(".partial")
    partial.write_bytes(b"".join(chunks))
    partial.rename(out)


def build_initramfs(modules: Path) -> Path:
    """build/vm/initramfs.cpio: busybox, /init, the wanted modules and /modules.list."""
    table = parse_modules_dep((modules / "modules.dep").read_text())
    builtin = builtin_modules(modules)
    order = load_order(table, [name for name in WANTED_MODULES if name not in builtin])
    staging = CACHE / "initramfs"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    (staging / "lib" / "modules").mkdir(parents=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy2(busybox, staging / "bin" / "busybox")
    shutil.copy2(VM_DIR / "initramfs-init.sh", staging / "init")
    (staging / "init").chmod(0o755)
    for name in order:
        shutil.copy2(modules / table[name][0], staging / "lib" / "modules" / f"{name}.ko")
    (staging / "modules.list").write_text("".join(f"{name}\n" for name in order))
    out = CACHE / "initramfs.cpio"
    write_newc_cpio(staging, out)
    log(f"initramfs: busybox and {len(order)} modules, {out.stat().st_size // 1024} KiB")
    return out


def qemu_command(vmlinuz: Path, initramfs: Path, accel: str, mode: str) -> list[str]:
    return [
        "qemu-system-x86_64", "-accel", "kvm" if accel == "kvm" else "tcg,thread=multi",
        "-machine", "q35",
        # Under TCG a plain x86-64-v2 CPU: with "max", glibc and Python pick AVX code paths
        # that TCG emulates slowly (a CLI call took twice as long).
        "-cpu", "host" if accel == "kvm" else "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt",
        "-smp", "2", "-m", "2048", "-nodefaults", "-no-user-config", "-display", "none",
        "-no-reboot", "-nic", "none",
        "-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
        "-device", "virtio-rng-pci",
        "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        "-kernel", str(vmlinuz), "-initrd", str(initramfs),
        "-append", f"console=ttyS0 panic=-1 loglevel=4 pycontain.mode={mode}"
        f" pycontain.repo={REPO}",
    ]


def boot(command: list[str], timeout: float, echo: bool) -> tuple[list[str], bool]:
    """Run QEMU until it exits or ``timeout`` seconds pass; return its console lines, timed out.

    QEMU runs in a process group of its own and is killed (group and all) on the way out.

    Raises:
        VmTestError: QEMU could not be started.
    """
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        raise VmTestError(f"start {command[0]}: {exc.strerror or exc}") from exc
    assert process.stdout is not None
    lines: list[str] = []
    pending = b""
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                if not selector.select(min(left, 1.0)):
                    continue
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    line = raw.decode(errors="replace").rstrip("\r")
                    lines.append(line)
                    if echo:
                        print(line, flush=True)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()
    if pending:
        lines.append(pending.decode(errors="replace"))
    return lines, timed_out


def choose_accel(vmlinuz: Path, initramfs: Path, probe_timeout: float) -> str:
    """KVM when a probe boot under it reaches the initramfs and powers off in time, else TCG."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        log("no usable /dev/kvm: TCG")
        return "tcg"
    started = time.monotonic()
    lines, timed_out = boot(qemu_command(vmlinuz, initramfs, "kvm", "probe"), probe_timeout,
                            echo=False)
    if PROBE_MARK in lines:
        log(f"KVM probe booted in {time.monotonic() - started:.1f} s: KVM")
        return "kvm"
    why = f"no answer within {probe_timeout:g} s" if timed_out else "it did not boot"
    log(f"KVM probe failed ({why}; last line {lines[-1] if lines else '-'!r}): TCG")
    return "tcg"


def parse_result(lines: list[str]) -> tuple[str | None, int | None]:
    summary = status = None
    for line in lines:
        at = line.find(SUMMARY_MARK)
        if at >= 0:
            summary = line[at + len(SUMMARY_MARK):].strip()
        match = re.search(re.escape(EXIT_MARK) + r"(\d+)", line)
        if match:
            status = int(match.group(1))
    return summary, status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the cgroup v2 tests in a QEMU guest.")
    parser.add_argument("--accel", choices=["auto", "kvm", "tcg"],
                        default=os.environ.get("VM_ACCEL", "auto"),
                        help="auto probes KVM and falls back to TCG (default: $VM_ACCEL or auto)")
    parser.add_argument("--timeout", type=float, default=570,
                        help="seconds the guest may run (default %(default)s)")
    parser.add_argument("--probe-timeout", type=float, default=20,
                        help="seconds a KVM boot may take to reach the initramfs "
                        "(default %(default)s)")
    parser.add_argument("pytest_args", nargs="*",
                        help="pytest arguments for the guest (default: the cgroup and "
                        "lifecycle tests, -m 'cgroup_v2 or not cgroup_v2')")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("vm-test: run as root (the guest's daemon and the 9p share need it)",
              file=sys.stderr)
        return NO_RESULT
    started = time.monotonic()
    try:
        vmlinuz, modules = fetch_kernel()
        initramfs = build_initramfs(modules)
        accel = args.accel
        if accel == "auto":
            accel = choose_accel(vmlinuz, initramfs, args.probe_timeout)
        pytest_args = args.pytest_args or ["-q", "-m", "cgroup_v2 or not cgroup_v2",
                                           *DEFAULT_TESTS]
        (CACHE / "pytest-args").write_text("".join(f"{arg}\n" for arg in pytest_args))
        log(f"booting {vmlinuz.name} under {accel.upper()}: pytest {' '.join(pytest_args)}")
        lines, timed_out = boot(qemu_command(vmlinuz, initramfs, accel, "test"), args.timeout,
                                echo=True)
    except VmTestError as exc:
        print(f"vm-test: {exc}", file=sys.stderr)
        return NO_RESULT
    summary, status = parse_result(lines)
    elapsed = time.monotonic() - started
    if status is None:
        why = f"timed out after {args.timeout:g} s" if timed_out else "exited"
        log(f"the guest {why} without reporting a result ({accel.upper()}, {elapsed:.0f} s)")
        return NO_RESULT
    log(f"guest pytest: {summary} (exit {status}, {accel.upper()}, {elapsed:.0f} s in all)")
    return status


if __name__ == "__main__":
    sys.exit(main())
