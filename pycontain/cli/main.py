"""``pycontain``: the command line.  Entry point ``main``.

Layering: ``main`` parses the global flags, imports only the module of the verb
asked for (so ``run`` and ``ps`` start on the standard library alone), parses the
verb's flags (cli/flags.py), calls ``cmd_<verb>(ctx, opts)`` and turns every
error into one line on stderr and Docker's exit code:

    usage error (flags)        125   "unknown flag: --foo" + "See 'pycontain run --help'."
    wrong number of arguments    1   "\"pycontain stop\" requires at least 1 argument."
    daemon error                 1   "Error response from daemon: <message>"
                               125   for run/create: "pycontain: Error response from daemon: ..."
    daemon not running         1/125 "Cannot connect to the pycontain daemon at ..."
    Ctrl-C                     130   (quietly)
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from pycontain.cli.common import Context, Verb
from pycontain.cli.flags import VALUE, Command, Flag, Options, parse, usage_text
from pycontain.errors import InvalidArgument, PycontainError

__all__ = ["main"]

# verb -> (module under pycontain.cli, one-line description)
VERB_MODULES: dict[str, tuple[str, str]] = {
    "run": ("run", "Create and run a new container from an image"),
    "create": ("run", "Create a new container"),
    "start": ("run", "Start one or more stopped containers"),
    "attach": ("run", "Attach local standard input, output, and error streams to a running "
                      "container"),
    "stop": ("lifecycle", "Stop one or more running containers"),
    "restart": ("lifecycle", "Restart one or more containers"),
    "kill": ("lifecycle", "Kill one or more running containers"),
    "rm": ("lifecycle", "Remove one or more containers"),
    "wait": ("lifecycle", "Block until one or more containers stop, then print their exit codes"),
    "pause": ("lifecycle", "Pause all processes within one or more containers"),
    "unpause": ("lifecycle", "Unpause all processes within one or more containers"),
    "ps": ("ps", "List containers"),
    "logs": ("observe", "Fetch the logs of a container"),
    "top": ("observe", "Display the running processes of a container"),
    "exec": ("exec", "Execute a command in a running container"),
    "port": ("observe", "List port mappings or a specific mapping for the container"),
    "cp": ("files", "Copy files/folders between a container and the local filesystem"),
    "export": ("files", "Export a container's filesystem as a tar archive"),
    "diff": ("files", "Inspect changes to files or directories on a container's filesystem"),
    "commit": ("files", "Create a new image from a container's changes"),
    "network": ("network", "Manage networks: create, ls, rm, inspect"),
    "inspect": ("observe", "Return low-level information on containers or images"),
    "images": ("images", "List images"),
    "rmi": ("images", "Remove one or more images"),
    "import": ("images", "Import the contents from a tarball to create a filesystem image"),
    "load": ("images", "Load an image from a tar archive or STDIN"),
    "pull": ("images", "Download an image from a registry"),
    "login": ("login", "Log in to a registry"),
    "logout": ("login", "Log out from a registry"),
    "events": ("events", "Get real time events from the server"),
    "system": ("system", "Manage pycontain: disk usage (df), remove unused data (prune)"),
    "version": ("system", "Show the pycontain version information"),
    "info": ("system", "Display system-wide information"),
}

GLOBAL = Command(
    "", "COMMAND", "A self-sufficient runtime for containers",
    (Flag("host", "H", VALUE, "Daemon socket to connect to (default "
          "unix:///run/pycontain.sock, or $PYCONTAIN_HOST)"),
     Flag("version", "v", help="Print version information and quit")),
    interspersed=False,
)


def _overview() -> str:
    width = max(len(verb) for verb in VERB_MODULES) + 2
    lines = ["", "Usage:  pycontain [OPTIONS] COMMAND", "",
             "A small container runtime that shows, for real, what Docker does", "",
             "Commands:"]
    lines += [f"  {verb.ljust(width)}{text}" for verb, (_, text) in VERB_MODULES.items()]
    lines += ["", "Global Options:",
              "  -H, --host string   Daemon socket to connect to",
              "  -v, --version       Print version information and quit", "",
              "Run 'pycontain COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def _load_verb(name: str) -> Verb:
    module = importlib.import_module(f"pycontain.cli.{VERB_MODULES[name][0]}")
    verbs: dict[str, Verb] = module.VERBS
    return verbs[name]


def _arity_error(command: Command, count: int) -> str | None:
    """Docker's message when a verb gets too few or too many positional arguments."""
    low, high = command.min_args, command.max_args
    if low <= count and (high is None or count <= high):
        return None
    path = f"pycontain {command.name}"
    if high == 0:
        need = "accepts no arguments."
    else:
        if high is None:
            bound, number = f"at least {low}", low
        elif low == high:
            bound, number = f"exactly {low}", low
        elif low == 0:
            bound, number = f"at most {high}", high
        else:
            bound, number = f"at least {low} and at most {high}", high
        need = f"requires {bound} argument{'' if number == 1 else 's'}."
    return f'"{path}" {need}\nSee \'{path} --help\'.'


def _run_verb(verb: Verb, host: str | None, words: Sequence[str]) -> int:
    command = verb.command
    ctx = Context(host, sys.stdout, sys.stderr, command.name)
    try:
        opts: Options = parse(command, words)
    except InvalidArgument as exc:
        ctx.error(f"{exc.message}\nSee 'pycontain {command.name} --help'.")
        return 125
    if opts.help_requested:
        ctx.out.write(usage_text(command))
        return 0
    arity = _arity_error(command, len(opts.args))
    if arity:
        ctx.error(arity)
        return 1
    prefix = "pycontain: " if verb.run_style else ""
    failure = 125 if verb.run_style else 1
    try:
        return verb.function(ctx, opts)
    except PycontainError as exc:
        ctx.daemon_error(exc, prefix)
        return failure


def _dispatch(argv: Sequence[str]) -> int:
    try:
        opts = parse(GLOBAL, argv)
    except InvalidArgument as exc:
        sys.stderr.write(f"{exc.message}\nSee 'pycontain --help'.\n")
        return 125
    if opts.flag("version"):
        from pycontain.cli.system import client_version

        sys.stdout.write(f"pycontain version {client_version()}\n")
        return 0
    if opts.help_requested or not opts.args:
        sys.stdout.write(_overview())
        return 0
    name, *words = opts.args
    if name not in VERB_MODULES:
        sys.stderr.write(f"pycontain: '{name}' is not a pycontain command.\n"
                         "See 'pycontain --help'\n")
        return 1
    host = opts.text("host") or None
    return _run_verb(_load_verb(name), host, words)


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so that the exit flush is silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (the console script exits with it)."""
    try:
        code = _dispatch(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 141


if __name__ == "__main__":
    sys.exit(main())
