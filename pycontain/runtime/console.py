"""The container's terminal: a pseudo-terminal pair from the container's own devpts.

Like runc's console socket: the process that is about to become the container's
program (the container init, or an exec'd process) opens ``/dev/ptmx`` inside the
container, so that the pair belongs to the container's devpts instance; it sends the
master to whoever relays the terminal (the shim, or the daemon for ``exec -t``) over a
Unix socket, and makes the slave its controlling terminal and its stdin, stdout and
stderr.  The relay writes the user's keystrokes to the master and reads the program's
output from it; a resize is a TIOCSWINSZ on the master, which sends SIGWINCH.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

TIOCSPTLCK = 0x40045431   # unlock the slave
TIOCGPTPEER = 0x5441      # open the slave from the master, without a path lookup


def set_size(fd: int, rows: int, cols: int) -> None:
    """The terminal's window size (on the master or the slave); 0 x 0 is left alone."""
    if rows > 0 and cols > 0:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def become_console_client(console: int, uid: int, size: tuple[int, int]) -> None:
    """Open a terminal pair, send its master on the socket ``console`` and make the
    slave this process's controlling terminal and fds 0, 1 and 2 (``console`` is then
    closed).  Runs inside the container (its mount namespace, after pivot_root)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
        os.fchown(slave, uid, -1)
        set_size(slave, *size)
        sock = socket.socket(fileno=os.dup(console))
        try:
            socket.send_fds(sock, [b"pty"], [master])
        finally:
            sock.close()
    finally:
        os.close(master)
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    if console > 2:
        os.close(console)


def receive_master(sock: socket.socket) -> int:
    """The master sent by ``become_console_client``; OSError when none came."""
    _, fds, _, _ = socket.recv_fds(sock, 16, 1)
    if not fds:
        raise OSError("no terminal was received from the container")
    return fds[0]
