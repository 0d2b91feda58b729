#!/bin/sh
# PID 1 of the test VM after switch_root: the host's / (read-only 9p) under a tmpfs overlay.
#
# Mounts what a Debian boot would (proc, sys, dev, a cgroup2 hierarchy at /sys/fs/cgroup
# with every controller enabled in the root's cgroup.subtree_control, tmpfs on /tmp and
# /run), runs the suite with the arguments the host wrote to build/vm/pytest-args, and
# reports on the console, one line each, for vm/vmtest.py to parse:
#   PYCONTAIN-VM-SUMMARY <pytest's last line>
#   PYCONTAIN-VM-EXIT <pytest's exit status>
# then powers off.
repo=$1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8

power_off() {
    sync
    echo o > /proc/sysrq-trigger
    sleep 60
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# The checkout may live under /tmp or /run (a CI clone often does): keep it in view
# through the fresh tmpfs mounts, at the same path (the venv's scripts name it).
mkdir -p /mnt/checkout
mount --bind "$repo" /mnt/checkout
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
if [ ! -d "$repo/.venv" ]; then
    mkdir -p "$repo"
    mount --move /mnt/checkout "$repo"
fi
mount -t cgroup2 cgroup2 /sys/fs/cgroup || {
    echo "PYCONTAIN-VM-SUMMARY cannot mount cgroup2 at /sys/fs/cgroup"
    echo "PYCONTAIN-VM-EXIT 125"
    power_off
}
for controller in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$controller" > /sys/fs/cgroup/cgroup.subtree_control
done
echo "vm: cgroup2 controllers enabled: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
ip link set lo up
hostname pycontain-vm
echo "vm: kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"

cd "$repo" || {
    echo "PYCONTAIN-VM-SUMMARY the checkout $repo is not in the guest"
    echo "PYCONTAIN-VM-EXIT 125"
    power_off
}
# The host wrote one pytest argument per line.
set --
while IFS= read -r argument; do
    set -- "$@" "$argument"
done < build/vm/pytest-args
.venv/bin/pytest -p no:cacheprovider "$@" > /tmp/pytest.out 2>&1 &
pytest_pid=$!
tail -n +1 -f /tmp/pytest.out --pid="$pytest_pid" &
wait "$pytest_pid"
status=$?
sleep 1
echo "PYCONTAIN-VM-SUMMARY $(grep -v '^$' /tmp/pytest.out | tail -n 1)"
echo "PYCONTAIN-VM-EXIT $status"
power_off
