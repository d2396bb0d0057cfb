"""The command line: bin/agent --server URL --token TOKEN [--gpus 0,1,...] [--advertise-address HOST]
[--interval SECONDS]."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading

from cluster_agent.client import ServerClient
from cluster_agent.loop import EXIT_STOPPED, Agent
from cluster_agent.runtime import Runtime

log = logging.getLogger("cluster_agent")


def gpu_list(text: str) -> list[int]:
    try:
        indices = sorted({int(index) for index in text.split(",") if index.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of GPU indices: {text!r}") from None
    if any(index < 0 for index in indices):
        raise argparse.ArgumentTypeError(f"GPU indices cannot be negative: {text!r}")
    return indices


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"the interval must be positive: {text!r}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bin/agent",
        description="Runs a cluster's deployments as containers on this host (Docker API at DOCKER_HOST).",
    )
    parser.add_argument("--server", default=os.environ.get("HV_SERVER"), help="the server's URL (HV_SERVER)")
    parser.add_argument("--token", default=os.environ.get("HV_AGENT_TOKEN"), help="the agent token (HV_AGENT_TOKEN)")
    parser.add_argument("--gpus", type=gpu_list, default=os.environ.get("HV_AGENT_GPUS", ""),
                        help="GPU indices this agent hands out, e.g. 0,1 (HV_AGENT_GPUS; default none)")
    parser.add_argument("--advertise-address",
                        default=os.environ.get("HV_AGENT_ADVERTISE_ADDRESS") or socket.gethostname(),
                        help="the host in the URLs of its services' published ports (HV_AGENT_ADVERTISE_ADDRESS; "
                             "default this host's name)")
    parser.add_argument("--interval", type=seconds, default=os.environ.get("HV_AGENT_INTERVAL"),
                        help="seconds between passes (HV_AGENT_INTERVAL; default: what the server suggests)")
    args = parser.parse_args(argv)
    if not args.server:
        parser.error("--server (or HV_SERVER) is required")
    if not args.token:
        parser.error("--token (or HV_AGENT_TOKEN) is required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    agent = Agent(ServerClient(args.server, args.token), Runtime.from_env, args.gpus, args.interval, stop,
                  advertise_address=args.advertise_address)
    result: list[int] = []
    # The loop runs in a daemon thread so that a sync or a Docker call in flight never delays the exit.
    loop = threading.Thread(target=lambda: result.append(agent.run()), daemon=True, name="reconcile")
    log.info("agent starting: server %s, GPUs %s", args.server, args.gpus or "none")
    loop.start()
    while loop.is_alive() and not stop.is_set():
        stop.wait(0.1)
    if stop.is_set():
        log.info("stopping; containers keep running")
        return EXIT_STOPPED
    return result[0] if result else 1


if __name__ == "__main__":
    sys.exit(main())
