"""Container networking: a Linux bridge, one veth pair per container, IPAM, NAT.

Layering, bottom up (each module usable and tested on its own):

- ``naming``: container id checks and the host-side veth name (``pcv`` + 10 hex);
- ``ports``: ``-p`` specifications parsed into ``PortMapping`` (standard library only);
- ``ipam``: the address leases of a subnet, persisted atomically as JSON;
- ``bridge``: the bridge and the veth pairs through netlink (pyroute2, async); a
  container's namespace is configured through a netlink socket opened inside it by a
  brief setns() of the calling thread: the daemon never forks;
- ``libnft`` and ``nat``: masquerade and published ports in one nftables table of the
  project's own, through libnftables in-process;
- ``service``: ``BridgeNetwork``, the calls the container manager makes (setup,
  connect, disconnect, recover).

Unlike the other packages, this one re-exports nothing: importing ``pycontain.network``
must stay free of pyroute2 so that the CLI's fast path can use ``network.ports``.
Import from the modules: ``from pycontain.network.service import BridgeNetwork``.
"""
