"""pycontain's default seccomp profile, written out as data in the profile format
(``defaultAction``, ``syscalls``: ``names``/``action``/``args``/``includes``/``excludes``)
that ``--security-opt seccomp=PROFILE.json`` accepts too.

It follows Docker's default semantics: a deny-by-default allow list (EPERM for what
is not listed); never keyctl/add_key/request_key, userfaultfd, kexec, io_uring or the
module and swap calls; the namespace, mount, bpf, perf, ptrace, clock and reboot
calls only when the container holds the capability that guards them; clone only
without namespace flags; clone3 answered ENOSYS (its flags sit in memory, where a
filter cannot look) so that the C library falls back to clone.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_PROFILE"]

_EPERM = 1
_ENOSYS = 38
_NAMESPACE_FLAGS = 0x7E020000   # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET

_FILES = """
    access faccessat faccessat2 chdir fchdir chmod fchmod fchmodat fchmodat2 chown fchown
    fchownat lchown close close_range creat dup dup2 dup3 fadvise64 fallocate fcntl
    fdatasync flock fstat fstatfs fsync ftruncate getcwd getdents getdents64 link linkat
    lseek lstat mkdir mkdirat mknod mknodat newfstatat open openat openat2 pread64 preadv
    preadv2 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv rename
    renameat renameat2 rmdir sendfile splice stat statfs statx symlink symlinkat sync
    sync_file_range syncfs tee truncate umask unlink unlinkat utime utimensat utimes
    futimesat vmsplice write writev copy_file_range getxattr lgetxattr fgetxattr listxattr
    llistxattr flistxattr setxattr lsetxattr fsetxattr removexattr lremovexattr
    fremovexattr inotify_init inotify_init1 inotify_add_watch inotify_rm_watch
    fanotify_mark memfd_create memfd_secret
"""
_MEMORY = """
    brk mmap munmap mremap mprotect madvise mincore mlock mlock2 mlockall munlock
    munlockall msync membarrier remap_file_pages pkey_alloc pkey_free pkey_mprotect
    set_thread_area get_thread_area arch_prctl
"""
_PROCESSES = """
    execve execveat exit exit_group fork vfork wait4 waitid kill tkill tgkill getpid
    getppid gettid getpgid getpgrp getsid setpgid setsid getuid geteuid getgid getegid
    getresuid getresgid getgroups setuid setgid setreuid setregid setresuid setresgid
    setfsuid setfsgid setgroups capget capset prctl getpriority setpriority
    sched_getaffinity sched_setaffinity sched_getparam sched_setparam sched_getscheduler
    sched_setscheduler sched_get_priority_max sched_get_priority_min sched_rr_get_interval
    sched_getattr sched_setattr sched_yield getrlimit setrlimit prlimit64 getrusage times
    set_tid_address set_robust_list get_robust_list futex futex_waitv futex_wait
    futex_wake futex_requeue rseq ioprio_get ioprio_set pidfd_open pidfd_send_signal
    restart_syscall uname getrandom seccomp sysinfo chroot
"""
_SIGNALS = """
    rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
    rt_sigtimedwait rt_tgsigqueueinfo sigaltstack signalfd signalfd4 pause alarm
"""
_TIME = """
    clock_getres clock_gettime clock_nanosleep nanosleep gettimeofday time getitimer
    setitimer timer_create timer_delete timer_getoverrun timer_gettime timer_settime
    timerfd_create timerfd_gettime timerfd_settime
"""
_EVENTS_AND_IPC = """
    epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait eventfd
    eventfd2 poll ppoll select pselect6 pipe pipe2 ioctl io_setup io_destroy io_submit
    io_cancel io_getevents io_pgetevents msgctl msgget msgrcv msgsnd semctl semget semop
    semtimedop shmat shmctl shmdt shmget mq_open mq_unlink mq_timedsend mq_timedreceive
    mq_notify mq_getsetattr landlock_create_ruleset landlock_add_rule
    landlock_restrict_self
"""
_NETWORK = """
    socket socketpair bind listen accept accept4 connect getsockname getpeername
    getsockopt setsockopt sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg shutdown
"""

# (syscalls, the capability that unlocks them)
_GUARDED = (
    ("""bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount
        mount_setattr move_mount name_to_handle_at open_tree perf_event_open quotactl quotactl_fd
        setdomainname sethostname setns syslog umount2 unshare pivot_root""",
     "CAP_SYS_ADMIN"),
    ("reboot", "CAP_SYS_BOOT"),
    ("delete_module init_module finit_module", "CAP_SYS_MODULE"),
    ("acct", "CAP_SYS_PACCT"),
    ("kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
     "CAP_SYS_PTRACE"),
    ("iopl ioperm", "CAP_SYS_RAWIO"),
    ("settimeofday clock_settime clock_adjtime adjtimex", "CAP_SYS_TIME"),
    ("vhangup", "CAP_SYS_TTY_CONFIG"),
    ("get_mempolicy mbind set_mempolicy set_mempolicy_home_node migrate_pages move_pages",
     "CAP_SYS_NICE"),
    ("syslog", "CAP_SYSLOG"),
    ("bpf", "CAP_BPF"),
    ("perf_event_open", "CAP_PERFMON"),
    ("open_by_handle_at", "CAP_DAC_READ_SEARCH"),
)

_ALLOWED = " ".join((_FILES, _MEMORY, _PROCESSES, _SIGNALS, _TIME, _EVENTS_AND_IPC, _NETWORK))


def _rule(names: str, action: str = "SCMP_ACT_ALLOW", **extra: Any) -> dict[str, Any]:
    return {"names": names.split(), "action": action, **extra}


DEFAULT_PROFILE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": _EPERM,
    "syscalls": [
        _rule(_ALLOWED),
        # personality(2) only for the Linux, 32-bit-address and "query" personalities.
        *(_rule("personality", args=[{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}])
          for value in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)),
        # clone without any namespace flag (x86_64: the flags are the first argument).
        _rule("clone", args=[{"index": 0, "value": _NAMESPACE_FLAGS, "valueTwo": 0,
                              "op": "SCMP_CMP_MASKED_EQ"}],
              excludes={"caps": ["CAP_SYS_ADMIN"]}),
        _rule("clone3", "SCMP_ACT_ERRNO", errnoRet=_ENOSYS,
              excludes={"caps": ["CAP_SYS_ADMIN"]}),
        *(_rule(names, includes={"caps": [cap]}) for names, cap in _GUARDED),
    ],
}
