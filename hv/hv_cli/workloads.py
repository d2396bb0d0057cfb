"""hv's commands for deployments: run, apply, ps, get, why, logs, events, and cancel, complete, fail."""
import json
import sys
from pathlib import Path

import click
from rich.live import Live

from . import manifest
from .common import cli, command
from .following import FINISHED, exit_code_of, follow_output
from .streams import StreamLost, follow
from .why import explain

COLUMNS = ["ID", "NAME", "CLUSTER", "STATUS", "PRIORITY", "CPU", "RAM", "GPU", "REASON"]


def row(d: dict) -> list:
    return [d["id"], d["name"], d["cluster"], d["status"], d["priority"], d["cpu_required"], d["ram_required"],
            d["gpu_required"], d.get("status_reason") or ""]


def environment(pairs: tuple[str, ...]) -> dict:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"'{pair}' is not NAME=VALUE", param_hint="--env")
        env[name] = value
    return env


@command(cli)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--cluster", type=int, required=True, help="The cluster's id.")
@click.option("--name", help="A name (default: the image's).")
@click.option("--cpu", help="Cores, e.g. 0.5.")
@click.option("--ram", help="GB, e.g. 2.")
@click.option("--gpu", type=int, help="Whole GPUs.")
@click.option("--priority", type=int, help="Higher starts first and may preempt lower.")
@click.option("--project", type=int, help="The project's id (default: the organization's `default`).")
@click.option("--env", multiple=True, metavar="NAME=VALUE", help="An environment variable; repeat for more.")
@click.option("--restart", type=click.Choice(["never", "on_failure", "always"]), help="Restart policy.")
@click.option("--time-limit", type=int, metavar="SECONDS", help="Fail it once it has run this long.")
@click.option("--port", type=click.IntRange(1, 65535), multiple=True,
              help="A TCP port the container listens on; repeat for more. `hv get` shows where it is published.")
@click.option("--persist", metavar="PATH", help="A path in the container that outlives its containers.")
@click.option("--depends-on", type=int, multiple=True, metavar="ID", help="Start only after it completed.")
@click.option("--dry-run", is_flag=True, help="Say what submitting would do now; submit nothing.")
@click.option("--attach", is_flag=True, help="Follow its output to its end; exit with its exit code.")
def run(ui, image, command, cluster, name, cpu, ram, gpu, priority, project, env, restart, time_limit, port, persist,
        depends_on, dry_run, attach) -> None:
    """Submit a deployment of IMAGE, running COMMAND if given (after `--`).

    With --attach, follow its output until it ends and exit with its container's exit code (0 when it completed
    without one, 125 when hv could not follow it to its end).

    \b
    Example:
      hv run --cluster 1 --cpu 1 --ram 1 --attach localhost/busybox:test -- sh -c 'echo hello; exit 3'
      hv run --cluster 1 --gpu 2 --priority 10 --env EPOCHS=3 --restart on_failure trainer:1
    """
    body = {"cluster": cluster, "docker_image": image, "name": name or image.rsplit("/", 1)[-1].split(":")[0]}
    optional = {"cpu_required": cpu, "ram_required": ram, "gpu_required": gpu, "priority": priority,
                "project": project, "restart_policy": restart, "time_limit_seconds": time_limit,
                "persist_path": persist, "command": list(command) or None, "env": environment(env) or None,
                "ports": list(port) or None, "depends_on": list(depends_on) or None}
    body.update({key: value for key, value in optional.items() if value is not None})
    if dry_run:
        answer = ui.api.post("/deployments/dry-run/", body)
        ui.emit(answer) if ui.json else ui.out.print(f"{answer['decision']}: {answer['status_reason']}", markup=False)
        return
    created = ui.api.post("/deployments/", body)
    if not attach:
        ui.emit(created) if ui.json else ui.out.print(f"#{created['id']} {created['name']}: {created['status']}",
                                                       markup=False)
        return
    ui.note(f"#{created['id']} submitted; following its output (Ctrl-C stops following, not the deployment).")
    try:
        ended = follow_output(ui, created["id"], tail=10_000)
    except StreamLost as error:
        ui.note(f"hv: {error}")
        sys.exit(125)
    if ended["status"] not in FINISHED:
        ui.note(f"hv: #{created['id']} is still {ended['status']}, but its stream ended")
        sys.exit(125)
    ui.note(f"#{created['id']} {ended['status']}: {ended['status_reason']}")
    sys.exit(exit_code_of(ended))


@command(cli)
@click.option("-f", "--file", "path", type=click.Path(exists=True, dir_okay=False, allow_dash=True), required=True,
              help="A YAML file: one deployment, or a list (`-` reads standard input).")
@click.option("--dry-run", is_flag=True, help="Say what submitting each would do now; submit nothing.")
def apply(ui, path, dry_run) -> None:
    """Submit the deployments of a YAML file, dependencies first. Keys are the API's field names; `depends_on`
    may name other deployments of the file.

    \b
    Example:
      hv apply -f pipeline.yaml
    \b
      # pipeline.yaml
      - name: train
        cluster: 1
        docker_image: trainer:1
        cpu_required: "2"
      - name: evaluate
        cluster: 1
        docker_image: eval:1
        depends_on: [train]
    """
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    specs = manifest.in_creation_order(manifest.load(text))
    ids: dict[str, int] = {}
    for spec in specs:
        if dry_run:
            unknown = [d for d in spec.get("depends_on") or [] if isinstance(d, str)]
            body = manifest.body_of({**spec, "depends_on": [d for d in spec.get("depends_on") or []
                                                              if not isinstance(d, str)]}, ids)
            answer = ui.api.post("/deployments/dry-run/", body)
            after = f" (once {', '.join(unknown)} completed)" if unknown else ""
            ui.emit({"name": spec["name"], **answer}) if ui.json else ui.out.print(
                f"{spec['name']}: {answer['decision']}{after}: {answer['status_reason']}", markup=False)
            continue
        created = ui.api.post("/deployments/", manifest.body_of(spec, ids))
        ids[spec["name"]] = created["id"]
        ui.emit(created) if ui.json else ui.out.print(f"#{created['id']} {created['name']}: {created['status']}",
                                                       markup=False)


@command(cli)
@click.option("-a", "--all", "everything", is_flag=True, help="Finished ones too (default: pending and running).")
@click.option("--cluster", type=int, help="Only this cluster's.")
@click.option("--status", multiple=True, type=click.Choice(["pending", "running", "completed", "failed", "cancelled"]),
              help="Only these statuses.")
@click.option("-w", "--watch", is_flag=True, help="Keep watching: a line (or JSON object) per change.")
def ps(ui, everything, cluster, status, watch) -> None:
    """Your deployments: pending and running ones, or all with -a.

    \b
    Example:
      hv ps
      hv ps -w --cluster 1
      hv ps -a -o json | jq -r 'select(.status == "failed") | .id'
    """
    statuses = list(status) or ([] if everything else ["pending", "running"])
    params = {key: value for key, value in {"cluster": cluster, "status": statuses}.items() if value}
    shown = {d["id"]: d for d in ui.api.every("/deployments/", **params)}
    if ui.json:
        for deployment in shown.values():
            ui.emit(deployment)
    elif not watch or not ui.out.is_terminal:
        ui.table(COLUMNS, [row(d) for d in shown.values()])
    if watch:
        # Every status, so that starts and ends show; without -a, what starts out finished is not listed.
        _watch(ui, shown, {key: value for key, value in {"cluster": cluster, "status": list(status)}.items() if value})


def _watch(ui, shown: dict, params: dict) -> None:
    query = "".join(f"&{key}={v}" for key, value in params.items() for v in (value if isinstance(value, list)
                                                                              else [value]))
    changes = follow(ui.api, f"/deployments/?watch=true{query}")
    if ui.json or not ui.out.is_terminal:
        for event in changes:
            deployment = json.loads(event.data)
            if shown.get(deployment["id"]) != deployment:  # a resume may send what was already shown
                shown[deployment["id"]] = deployment
                ui.emit(deployment) if ui.json else ui.out.print("  ".join(map(str, row(deployment))), markup=False)
        return
    from rich.table import Table

    def render() -> Table:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in COLUMNS:
            table.add_column(column, overflow="fold")
        for deployment in sorted(shown.values(), key=lambda d: -d["id"]):
            table.add_row(*map(str, row(deployment)))
        return table

    with Live(render(), console=ui.out, auto_refresh=False) as live:
        for event in changes:
            deployment = json.loads(event.data)
            shown[deployment["id"]] = deployment
            live.update(render(), refresh=True)


@command(cli)
@click.argument("pk", metavar="ID", type=int)
def get(ui, pk) -> None:
    """One deployment, every field.

    \b
    Example:
      hv get 12 -o json | jq .runtime
    """
    deployment = ui.api.get(f"/deployments/{pk}/")
    if ui.json:
        ui.emit(deployment)
        return
    ui.table(["FIELD", "VALUE"], [[key, json.dumps(value) if isinstance(value, (dict, list)) else value]
                                  for key, value in deployment.items()])


@command(cli)
@click.argument("pk", metavar="ID", type=int)
def why(ui, pk) -> None:
    """Why a deployment waits: the reason, what it is short of, its place in the queue, what could be preempted,
    any reservation.

    \b
    Example:
      hv why 12
    """
    deployment = ui.api.get(f"/deployments/{pk}/")
    if ui.json:
        ui.emit({"id": pk, "status": deployment["status"], "status_reason": deployment["status_reason"],
                 "scheduling": deployment.get("scheduling")})
        return
    for line in explain(deployment):
        ui.out.print(line, markup=False)


@command(cli)
@click.argument("pk", metavar="ID", type=int)
@click.option("-f", "--follow", "following", is_flag=True, help="Keep printing new output until it ends.")
@click.option("--tail", type=click.IntRange(0, 10_000), default=100, show_default=True, help="How many last lines.")
def logs(ui, pk, following, tail) -> None:
    """A deployment's output. With -f it waits through pending (saying why) and ends when the deployment ends.

    \b
    Example:
      hv logs 12 --tail 20
      hv logs -f 12
    """
    if following:
        follow_output(ui, pk, tail)
        return
    answer = ui.api.get(f"/deployments/{pk}/logs/", tail=tail)
    if ui.json:
        ui.emit(answer)
        return
    for line in answer["lines"]:
        ui.line(line)


@command(cli)
@click.argument("pk", metavar="ID", type=int)
@click.option("-w", "--watch", is_flag=True, help="Keep printing new events until the deployment ends.")
def events(ui, pk, watch) -> None:
    """A deployment's history: queued, scheduled, started, preempted, completed...

    \b
    Example:
      hv events 12 -w
    """
    if watch:
        for event in follow(ui.api, f"/deployments/{pk}/events/?watch=true"):
            body = json.loads(event.data)
            ui.emit(body) if ui.json else ui.out.print(f"{body['at']}  {body['kind']:<22} {body['message']}",
                                                        markup=False)
        return
    history = ui.api.every(f"/deployments/{pk}/events/")
    if ui.json:
        for body in history:
            ui.emit(body)
        return
    ui.table(["AT", "KIND", "MESSAGE"], [[e["at"], e["kind"], e["message"]] for e in history])


def _finish(action: str, help_text: str):
    def finish(ui, pk) -> None:
        deployment = ui.api.post(f"/deployments/{pk}/{action}/")
        ui.emit(deployment) if ui.json else ui.out.print(f"#{pk} {deployment['status']}: "
                                                          f"{deployment['status_reason']}", markup=False)
    finish.__doc__ = f"{help_text}\n\n    \b\n    Example:\n      hv {action} 12\n    "
    click.argument("pk", metavar="ID", type=int)(command(cli, action)(finish))


_finish("cancel", "Cancel a pending or running deployment (its container is stopped).")
_finish("complete", "Mark a running deployment completed (ledger-only clusters).")
_finish("fail", "Mark a running deployment failed (ledger-only clusters).")
