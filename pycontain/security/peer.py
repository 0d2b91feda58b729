"""Who is on the other end of the API socket (SO_PEERCRED, SO_PEERGROUPS), and may they talk.

Access to the socket is access to root (a client can start a --privileged container
that mounts the host's /): only root and members of the socket's group are served.
File permissions (0660 root:GROUP) already keep others out; this check also holds
when the socket's mode is loosened by mistake or its fd is passed around.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

__all__ = ["PeerCredentials", "access_refusal", "peer_credentials"]

_SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)
_PEERGROUPS_BYTES = 1024  # Python's getsockopt limit: 256 groups; more -> /proc/<pid>/status


@dataclass(frozen=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...]   # supplementary groups when the peer connected


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """The connecting process's credentials, as the kernel recorded them at connect(2).

    Raises OSError when the socket is not a connected Unix socket.
    """
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    try:
        data = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, _PEERGROUPS_BYTES)
        groups = struct.unpack(f"{len(data) // 4}I", data[: len(data) // 4 * 4])
    except OSError:
        groups = _groups_from_proc(pid)
    return PeerCredentials(pid=pid, uid=uid, gid=gid, groups=tuple(groups))


def _groups_from_proc(pid: int) -> tuple[int, ...]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return tuple(int(g) for g in line.split()[1:])
    except (OSError, ValueError):
        pass
    return ()


def access_refusal(peer: PeerCredentials, socket_gid: int, group_name: str) -> str | None:
    """None when ``peer`` may use the API, else the one-line reason it may not."""
    if peer.uid == 0 or socket_gid == peer.gid or socket_gid in peer.groups:
        return None
    return (f"permission denied: uid {peer.uid} is neither root nor a member of group "
            f"{group_name} (gid {socket_gid}), which owns the API socket")
