"""The one exception tree of pycontain.

Every error the core raises is a ``PycontainError``. The API edge turns it into
Docker's ``{"message": ...}`` body with ``http_status``; the CLI prints its message
on one line and exits with ``exit_code``.  Foreign exceptions (OSError, JSON and
tar errors) are mapped once, at the boundary where they happen, with
``raise SomeError(...) from exc``.

    PycontainError                      500  generic failure of an operation
    ├── InvalidArgument                 400  a bad flag, value or request body
    │   └── ImageArchiveError           400  a corrupt, truncated or hostile image archive
    ├── NotFound                        404
    │   ├── NoSuchContainer             404
    │   ├── NoSuchImage                 404
    │   └── NoSuchNetwork               404
    ├── Conflict                        409  the object exists or is in the wrong state
    │   ├── NameInUse                   409
    │   ├── ImageInUse                  409
    │   └── InvalidStateTransition      409  e.g. pause of a stopped container
    ├── NotModified                     304  already in the state asked for (start/stop)
    ├── Unauthorized                    401  a registry refused the credentials (login)
    ├── RegistryError                   500  a registry refused a pull, failed or sent bad data
    ├── ContainerStartError             500  the container's process could not be started
    │   (exit_code 126: cannot invoke, 127: command not found)
    └── DaemonUnreachable               -    (client side) no daemon answers on the socket
"""

from __future__ import annotations


class PycontainError(Exception):
    """Base of every error pycontain raises on purpose."""

    http_status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(PycontainError):
    http_status = 400


class ImageArchiveError(InvalidArgument):
    """An image archive or layer that is corrupt, truncated or tries to escape its root."""


class NotFound(PycontainError):
    http_status = 404


class NoSuchContainer(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No such container: {name}")


class NoSuchImage(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No such image: {name}")


class NoSuchNetwork(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"network {name} not found")


class Conflict(PycontainError):
    http_status = 409


class NameInUse(Conflict):
    pass


class ImageInUse(Conflict):
    pass


class InvalidStateTransition(Conflict):
    pass


class NotModified(PycontainError):
    """The container already is in the state asked for (Docker answers 304)."""

    http_status = 304


class Unauthorized(PycontainError):
    """A registry refused the user name and password (``pycontain login``, ``POST /auth``)."""

    http_status = 401


class RegistryError(PycontainError):
    """A registry could not be reached, refused a request, or sent something that fails
    verification (a digest or size mismatch, a malformed manifest)."""


class ContainerStartError(PycontainError):
    """The container's first process could not be started.

    ``exit_code`` follows Docker: 126 when the command cannot be invoked,
    127 when it is not found, 125 for any other failure of the runtime.
    """

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class DaemonUnreachable(PycontainError):
    pass


def error_from_status(status: int, message: str) -> PycontainError:
    """Rebuild the error class from an HTTP status (used by the CLI's client)."""
    cls: type[PycontainError] = {
        400: InvalidArgument,
        401: Unauthorized,
        404: NotFound,
        409: Conflict,
    }.get(status, PycontainError)
    return cls(message)
