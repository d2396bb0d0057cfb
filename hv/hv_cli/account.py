"""hv's commands for who you are and where things run: login, logout, whoami, organizations, clusters, agents,
quotas."""
import sys

import click

from . import config
from .client import ApiError, Session
from .common import Group, cli, command
from .why import amounts


@cli.group(cls=Group)
def org():
    """Create or join an organization.

    \b
    Example:
      hv org create ml-team
    """


@cli.group(cls=Group)
def cluster():
    """Create a cluster.

    \b
    Example:
      hv cluster create gpu-pool --org 1 --cpu 16 --ram 64 --gpu 2
    """


@cli.group(cls=Group)
def agent():
    """Register the agent that runs a cluster's deployments as containers.

    \b
    Example:
      hv agent register 1 gpu-host-1
    """


@command(cli)
@click.option("--username", help="Your username (prompted for otherwise).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def login(ui, username: str | None, password_stdin: bool) -> None:
    """Log in to a server; the tokens are kept in a file only you can read, and refreshed when they expire.

    \b
    Example:
      hv login --server http://127.0.0.1:8000 --username ada
      echo "$PASSWORD" | hv login --server https://hv.example.com --username ada --password-stdin
    """
    server = (ui.server or Session().server or "").rstrip("/")
    if not server:
        server = click.prompt("Server URL").rstrip("/")
    username = username or click.prompt("Username")
    password = sys.stdin.readline().rstrip("\n") if password_stdin else click.prompt("Password", hide_input=True)
    tokens = Session(server).post("/auth/login", {"username": username, "password": password}, auth=False)
    config.save({**config.load(), "server": server, "username": username, "access": tokens["access"],
                 "refresh": tokens["refresh"]})
    if ui.json:
        ui.emit({"server": server, "username": username})
    else:
        ui.note(f"Logged in to {server} as {username}.")


@command(cli)
def logout(ui) -> None:
    """Log out: the refresh token is revoked on the server and forgotten here.

    \b
    Example:
      hv logout
    """
    settings = config.load()
    if settings.get("refresh"):
        try:
            ui.api.request("POST", "/auth/logout", json={"refresh": settings["refresh"]})
        except ApiError as error:
            ui.note(f"The server did not take the logout ({error}); forgetting the tokens here anyway.")
    config.save({key: value for key, value in settings.items() if key not in ("access", "refresh")})
    if not ui.json:
        ui.note("Logged out.")


@command(cli)
def whoami(ui) -> None:
    """Who you are logged in as, and your organizations with your role in each.

    \b
    Example:
      hv whoami -o json
    """
    me = ui.api.get("/auth/me")
    if ui.json:
        ui.emit(me)
        return
    ui.out.print(f"{me['username']} <{me['email']}> on {ui.api.server}", markup=False)
    ui.table(["ORG", "NAME", "ROLE"], [[o["id"], o["name"], o["role"]] for o in me.get("organizations", [])])


@command(cli)
def orgs(ui) -> None:
    """Your organizations.

    \b
    Example:
      hv orgs
    """
    ui.listing(ui.api.every("/organizations/"), ["ID", "NAME", "ROLE", "INVITE CODE"],
               lambda o: [o["id"], o["name"], o["role"], o.get("invite_code")])


@command(org, "create")
@click.argument("name")
def org_create(ui, name: str) -> None:
    """Create an organization; you become its admin.

    \b
    Example:
      hv org create ml-team
    """
    created = ui.api.post("/organizations/", {"name": name})
    ui.emit(created) if ui.json else ui.out.print(f"Organization {created['id']} '{created['name']}' created.",
                                                   markup=False)


@command(org, "join")
@click.argument("invite_code")
def org_join(ui, invite_code: str) -> None:
    """Join an organization with its invite code, as a developer.

    \b
    Example:
      hv org join 5f0c...e1
    """
    joined = ui.api.post("/organizations/join/", {"invite_code": invite_code})
    ui.emit(joined) if ui.json else ui.out.print(f"Joined organization {joined.get('id', '')}.", markup=False)


@command(cli)
def clusters(ui) -> None:
    """The clusters you can see, with what is free of each.

    \b
    Example:
      hv clusters
    """
    ui.listing(ui.api.every("/clusters/"), ["ID", "NAME", "ORG", "CPU FREE", "RAM FREE", "GPU FREE"],
               lambda c: [c["id"], c["name"], c["organization"], f"{c['cpu_available']}/{c['cpu_limit']}",
                          f"{c['ram_available']}/{c['ram_limit']}", f"{c['gpu_available']}/{c['gpu_limit']}"])


@command(cluster, "create")
@click.argument("name")
@click.option("--org", "organization", type=int, required=True, help="The organization's id.")
@click.option("--cpu", required=True, help="Cores, e.g. 16 or 0.5.")
@click.option("--ram", required=True, help="GB, e.g. 64.")
@click.option("--gpu", type=int, default=0, show_default=True, help="Whole GPUs.")
def cluster_create(ui, name: str, organization: int, cpu: str, ram: str, gpu: int) -> None:
    """Create a cluster of a fixed capacity (admins of the organization).

    \b
    Example:
      hv cluster create gpu-pool --org 1 --cpu 16 --ram 64 --gpu 2
    """
    created = ui.api.post("/clusters/", {"name": name, "organization": organization, "cpu_limit": cpu,
                                         "ram_limit": ram, "gpu_limit": gpu})
    ui.emit(created) if ui.json else ui.out.print(f"Cluster {created['id']} '{created['name']}' created.",
                                                   markup=False)


@command(agent, "register")
@click.argument("cluster_id", metavar="CLUSTER", type=int)
@click.argument("name")
def agent_register(ui, cluster_id: int, name: str) -> None:
    """Register the agent of a cluster and print its token (shown only once).

    \b
    Example:
      hv agent register 1 gpu-host-1
    """
    created = ui.api.post(f"/clusters/{cluster_id}/agents/", {"name": name})
    if ui.json:
        ui.emit(created)
        return
    ui.out.print(created["token"], markup=False)
    ui.note(f"Agent '{name}' registered. On the cluster's host: "
            f"bin/agent --server {ui.api.server} --token <the token above>")


@command(cli)
@click.argument("cluster_id", metavar="CLUSTER", type=int)
def quotas(ui, cluster_id: int) -> None:
    """Each project's quota on a cluster: what is guaranteed, the limit, the weight, and what it uses now.

    \b
    Example:
      hv quotas 1
    """
    ui.listing(ui.api.every(f"/clusters/{cluster_id}/quotas/"), ["PROJECT", "GUARANTEED", "LIMIT", "WEIGHT", "USAGE"],
               lambda q: [q["project"], amounts(q["guaranteed"]), amounts(q["limit"]) if q["limit"] else "none",
                          q["weight"], amounts(q["usage"])])
