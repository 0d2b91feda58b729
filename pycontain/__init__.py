"""pycontain: a small Linux container runtime that shows, for real, what Docker does.

Layering (each layer uses only those below it):

    cli/, daemon/            thin edges: argv or HTTP in, one core call, rendering out
    containers/              records, the lifecycle state machine, logs, the service
    images/  cgroups/        image store and layers; cgroup v1/v2 backends
    runtime/                 fork server, shim, container init, system calls
    errors, fsutil, timefmt  the exception tree, atomic writes, Docker's time format
"""

__version__ = "0.1.0"
