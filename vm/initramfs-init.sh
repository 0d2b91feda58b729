#!/bin/busybox sh
# PID 1 of the test VM's initramfs (vm/vmtest.py builds it; busybox-static only).
#
# Loads the kernel modules listed in /modules.list (dependencies first), then:
#   pycontain.mode=probe  prints the probe marker and powers off (the KVM probe);
#   pycontain.mode=test   mounts the host's / read-only over virtio 9p (tag hostroot),
#                         puts an overlay with a tmpfs upper on top of it, and
#                         switch_roots into it to run vm/guest-tests.sh from the checkout
#                         named by pycontain.repo=.
/bin/busybox mkdir -p /proc /sys /dev /bin /host /rw /newroot
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() {
    echo "PYCONTAIN-VM-ERROR $*"
    echo "PYCONTAIN-VM-EXIT 125"
    echo o > /proc/sysrq-trigger
    sleep 60
}

while read -r module; do
    insmod "/lib/modules/$module.ko" || echo "vm: insmod $module failed (skipped)"
done < /modules.list

mode=test
repo=
for word in $(cat /proc/cmdline); do
    case "$word" in
        pycontain.mode=*) mode=${word#pycontain.mode=} ;;
        pycontain.repo=*) repo=${word#pycontain.repo=} ;;
    esac
done

if [ "$mode" = probe ]; then
    echo "PYCONTAIN-VM-PROBE-OK"
    echo o > /proc/sysrq-trigger
    sleep 60
fi

mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /host \
    || fail "mount the host's / over virtio 9p"
mount -t tmpfs -o mode=0755 tmpfs /rw || fail "mount the overlay's tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot \
    || fail "mount the overlay root"
[ -x "/newroot$repo/vm/guest-tests.sh" ] || fail "no $repo/vm/guest-tests.sh in the shared root"
umount /proc /sys /dev
exec switch_root /newroot /bin/sh "$repo/vm/guest-tests.sh" "$repo"
