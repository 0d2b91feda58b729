"""``network create|ls|rm|inspect``: the daemon's bridge networks.

API calls:
    network create  POST /networks/create
                    {"Name", "Driver": "bridge", "IPAM": {"Config": [{"Subnet"}]}}
    network ls      GET /networks
    network rm      DELETE /networks/{name}
    network inspect GET /networks/{name}
"""

from __future__ import annotations

import json
from typing import Any

from pycontain.cli.common import Context, Verb, each, quote_path
from pycontain.cli.flags import VALUE, Command, Flag, Options

__all__ = ["VERBS"]

NETWORK = Command(
    "network", "create|ls|rm|inspect [NAME...]", "Manage networks",
    (Flag("subnet", kind=VALUE, help="create: subnet in CIDR format (default: a free "
          "10.89.N.0/24)"),
     Flag("quiet", "q", help="ls: only display network IDs")),
    min_args=1,
)


def cmd_network(ctx: Context, opts: Options) -> int:
    action, names = opts.args[0], opts.args[1:]
    if action == "create":
        if len(names) != 1:
            ctx.error('"pycontain network create" requires exactly 1 argument.')
            return 1
        body: dict[str, Any] = {"Name": names[0], "Driver": "bridge"}
        if opts.given("subnet"):
            body["IPAM"] = {"Config": [{"Subnet": opts.text("subnet")}]}
        ctx.line(ctx.client.json("POST", "/networks/create", body=body)["Id"])
        return 0
    if action in ("ls", "list"):
        networks = ctx.client.json("GET", "/networks") or []
        if opts.flag("quiet"):
            for network in networks:
                ctx.line(str(network["Id"])[:12])
            return 0
        from pycontain.cli.render import tabulate

        rows = [["NETWORK ID", "NAME", "DRIVER", "SCOPE"]]
        rows += [[str(n["Id"])[:12], str(n["Name"]), str(n["Driver"]), str(n["Scope"])]
                 for n in networks]
        ctx.out.write(tabulate(rows))
        return 0
    if action in ("rm", "remove"):
        return each(ctx, names, lambda name: _remove(ctx, name))
    if action == "inspect":
        found = [ctx.client.json("GET", f"/networks/{quote_path(n)}") for n in names]
        ctx.line(json.dumps(found, indent=4))
        return 0
    ctx.error(f'pycontain: unknown command "network {action}": use create, ls, rm or inspect')
    return 125


def _remove(ctx: Context, name: str) -> str:
    ctx.client.request("DELETE", f"/networks/{quote_path(name)}")
    return name


VERBS = {"network": Verb(NETWORK, cmd_network)}
