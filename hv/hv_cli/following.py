"""Following a deployment to its end: its output (`hv logs -f`, `hv run --attach`), and what it waits for while
it is pending."""
from .client import Unreachable
from .streams import follow
from .ui import Ui

FINISHED = ("completed", "failed", "cancelled")


def follow_output(ui: Ui, pk: int, tail: int) -> dict:
    """Print the deployment's output as it is written until the deployment ends; returns it as it ended.

    While it is pending the stream is open but silent: say why it waits, and again after each reconnection if
    that changed."""
    said = [None]

    def say_why() -> None:
        try:
            deployment = ui.api.get(f"/deployments/{pk}/")
        except Unreachable:
            return  # the stream is being retried; there is nothing new to say
        if deployment["status"] == "pending" and deployment["status_reason"] != said[0]:
            said[0] = deployment["status_reason"]
            ui.note(f"#{pk} is pending: {deployment['status_reason']} Waiting for it to start...")

    say_why()
    for event in follow(ui.api, f"/deployments/{pk}/logs/?follow=true&tail={tail}", on_reconnect=say_why):
        if event.event == "reset":
            ui.note("(earlier output is no longer kept: going on from the oldest line kept)")
        elif event.event == "message":
            ui.emit({"id": int(event.id), "line": event.data}) if ui.json else ui.line(event.data)
    return ui.api.get(f"/deployments/{pk}/")


def exit_code_of(deployment: dict) -> int:
    """As `docker run`: the container's exit code, 0 when it completed without one, 1 when it ended otherwise."""
    if deployment["exit_code"] is not None:
        return deployment["exit_code"]
    return 0 if deployment["status"] == "completed" else 1
