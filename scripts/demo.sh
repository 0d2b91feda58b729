#!/usr/bin/env bash
# The story of the lecture, told live on this machine's kernel (run by `make demo`).
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=$PWD/.venv/bin
SOCK=${PYCONTAIN_DEMO_SOCKET:-/run/pycontain.sock}
export PYCONTAIN_HOST=unix://$SOCK
started_daemon=""
ip_forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
bold=$(tput bold 2>/dev/null || true); plain=$(tput sgr0 2>/dev/null || true)

say()  { printf '\n%s%s%s\n' "$bold" "$*" "$plain"; }
# Print a command line as one would type it: arguments with spaces or specials in quotes.
quoted() {
    local arg out=()
    for arg in "$@"; do
        if [[ -z $arg || $arg =~ [^a-zA-Z0-9_./:=,@%+-] ]]; then out+=("'${arg//\'/\'\\\'\'}'"); else out+=("$arg"); fi
    done
    printf '%s' "${out[*]}"
}
show() { printf '$ %s\n' "$(quoted "$@")"; "$@"; echo; }
pc()   { printf '$ pycontain %s\n' "$(quoted "$@")"; "$BIN/pycontain" "$@"; echo; }

cleanup() {
    "$BIN/pycontain" rm -f demo-hello demo-web demo-http demo-lifecycle demo-limited demo-oom \
        >/dev/null 2>&1
    if [[ -n $started_daemon ]]; then
        kill "$started_daemon" 2>/dev/null && wait "$started_daemon" 2>/dev/null
        # What the daemon made for its bridge network goes with it here (Docker would keep it).
        ip link del pycontain0 2>/dev/null
        nft delete table inet pycontain 2>/dev/null
        echo "$ip_forward_before" > /proc/sys/net/ipv4/ip_forward
        say "The demo stopped the daemon it started. Start it again with:"
        echo "  sudo $BIN/pycontaind &"
    fi
}
trap cleanup EXIT

[[ $(id -u) == 0 ]] || { echo "make demo needs root (namespaces, mounts, cgroups): sudo make demo"; exit 1; }

say "1-2. Docker makes getting and running a program simple. pycontain does the same thing, in Python, for real."
echo "The CLI (pycontain) takes your command; the daemon (pycontaind) does the work."

if ! "$BIN/pycontain" version >/dev/null 2>&1; then
    say "5. Starting the daemon: it listens on $SOCK"
    "$BIN/pycontaind" -H "unix://$SOCK" 2>/tmp/pycontaind-demo.log &
    started_daemon=$!
    for _ in $(seq 100); do "$BIN/pycontain" version >/dev/null 2>&1 && break; sleep 0.1; done
fi
pc version

say "4. An image holds everything a program needs: a file snapshot and the start-up command."
echo "This machine has no internet registry here, so we load the busybox image built offline from Debian's static busybox:"
pc load -i rootfs/out/busybox.tar
pc images
pc inspect -f 'start-up command: {{json .Config.Cmd}}' busybox

say "3+7. A container is an instance of an image: the snapshot becomes its disk, the command its process."
pc run --name demo-hello busybox echo "hello from inside a container"

say "9. A command after the image replaces the image's start-up command (the image must contain it):"
pc run --rm busybox ls /

say "6. No guest OS, no hypervisor: the container shares the host's kernel."
echo "host kernel:      $(uname -r)"
echo -n "container kernel: "; "$BIN/pycontain" run --rm busybox uname -r

say "6. Processes inside a container are visible from the host, under their host PIDs."
cid=$("$BIN/pycontain" run -d --name demo-web busybox sleep 600)
pid=$("$BIN/pycontain" inspect -f '{{.State.Pid}}' demo-web)
echo "the container sees itself as PID 1:"
"$BIN/pycontain" run --rm busybox sh -c 'echo "  my PID is $$"; ps'
echo "the host sees demo-web's sleep as PID $pid:"
show ps -o pid,ppid,args -p "$pid"
pc top demo-web

say "6. Isolation: namespaces. The container's namespaces next to the host's:"
for ns in pid mnt uts ipc net; do
    printf '  %-4s host %-22s container %s\n' "$ns" "$(readlink /proc/self/ns/$ns)" "$(readlink /proc/$pid/ns/$ns)"
done
echo "its own hostname (the short id) and its own network: loopback and eth0 on the bridge:"
"$BIN/pycontain" run --rm busybox sh -c 'echo "  hostname: $(hostname)"; ip -o link | cut -d" " -f2,3 | sed "s/^/  /"'

say "9. PORTS: a port the container opened, connected to a port of the host (-p)."
pc run -d --name demo-http -p 80 busybox sh -c 'echo hello from a web server in a container > /tmp/index.html; exec httpd -f -p 80 -h /tmp'
pc port demo-http
hostport=$("$BIN/pycontain" port demo-http 80 | cut -d: -f2)
printf '$ fetch http://127.0.0.1:%s/ from the host\n' "$hostport"
"$BIN/python" -c "import sys, time, urllib.request
for _ in range(50):
    try: print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode(), end=''); break
    except OSError: time.sleep(0.1)" "http://127.0.0.1:$hostport/"
echo

say "9. docker ps: CONTAINER ID, IMAGE, COMMAND, CREATED, STATUS, PORTS, NAMES"
pc ps
pc ps -a
pc ps --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}'

say "9. The lifecycle: create, start -a, stop, rm"
pc create --name demo-lifecycle busybox echo "started with start -a"
pc ps -a --filter name=demo-lifecycle
pc start -a demo-lifecycle
pc ps -a --filter name=demo-lifecycle
echo "(sleep, as PID 1, ignores SIGTERM: after the timeout stop sends SIGKILL, hence exit code 137 = 128 + 9)"
pc stop -t 2 demo-web
pc ps -a --filter name=demo-web
pc rm -f demo-lifecycle demo-web demo-http

say "6. Isolation: cgroups limit what a group of processes may use. A 64 MB memory limit:"
"$BIN/pycontain" run -d --name demo-limited -m 64m --cpus 0.5 busybox sleep 600 >/dev/null
cg=$("$BIN/pycontain" info | sed -n 's/.*Cgroup Version: *//p')
id=$("$BIN/pycontain" inspect -f '{{.Id}}' demo-limited)
parent=$("$BIN/pycontain" inspect -f '{{.HostConfig.CgroupParent}}' demo-limited)
if [[ $cg == 2 ]]; then
    show cat "/sys/fs/cgroup/$parent/$id/memory.max" "/sys/fs/cgroup/$parent/$id/cpu.max"
else
    show cat "/sys/fs/cgroup/memory/$parent/$id/memory.limit_in_bytes" "/sys/fs/cgroup/cpu/$parent/$id/cpu.cfs_quota_us"
fi
pc rm -f demo-limited
echo "a program that wants more memory than it may have is killed by the kernel's OOM killer:"
printf '$ pycontain run --name demo-oom -m 16m --memory-swap 16m busybox sh -c "x=\$(head -c 100000000 /dev/zero | tr ...)"\n'
"$BIN/pycontain" run --name demo-oom -m 16m --memory-swap 16m busybox sh -c 'x=$(head -c 100000000 /dev/zero | tr "\0" a); echo survived'
echo "exit code: $?"
pc inspect -f 'OOMKilled={{.State.OOMKilled}} ExitCode={{.State.ExitCode}}' demo-oom

say "8. On macOS or Windows there is no Linux kernel: Docker runs a Linux VM. pycontain ships a Vagrantfile for that:"
echo "  vagrant up && vagrant ssh -c 'sudo pycontain run busybox ls'"

say "That's the whole story. Try it yourself, a shell inside a container (exit or Ctrl-P Ctrl-Q to leave):"
echo "  $BIN/pycontain run -it --rm busybox sh"
