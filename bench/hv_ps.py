"""`hv ps` against 1,000 deployments (issue 21: wall time p50 <= 0.5 s): the real `hv` process (bin/hv's install),
from start to exit, against gunicorn as bin/run serves it on PostgreSQL with Redis.

    .venv/bin/python bench/hv_ps.py [--deployments 1000] [--runs 20]
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from streams import PORT, ROOT, serve

HV = ROOT / "hv" / ".venv" / "bin" / "hv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    subprocess.run([ROOT / "bin" / "hv", "--version"], check=True, capture_output=True)
    directory = Path(tempfile.mkdtemp(prefix="hv-bench-ps-"))
    process = serve("wsgi", 2 * os.cpu_count() + 1, 8, False, directory)
    base = f"http://127.0.0.1:{PORT}"
    try:
        api = httpx.Client(base_url=f"{base}/api/v1", timeout=60)
        user = {"username": "bench", "email": "bench@example.com", "password": "correct-horse-battery"}
        api.post("/auth/register", json=user)
        token = api.post("/auth/login", json=user).json()["access"]
        api.headers["Authorization"] = f"Bearer {token}"
        org = api.post("/organizations/", json={"name": "bench"}).json()["id"]
        cluster = api.post("/clusters/", json={"name": "pool", "organization": org, "cpu_limit": "100000",
                                               "ram_limit": "100000", "gpu_limit": 0}).json()["id"]
        body = {"name": "job", "cluster": cluster, "docker_image": "img:1", "cpu_required": "1"}
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: api.post("/deployments/", json=body).raise_for_status(), range(args.deployments)))
        env = {**os.environ, "HV_SERVER": base, "HV_TOKEN": token}
        for output in ("table", "json"):
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                result = subprocess.run([HV, "ps", "-o", output], env=env, capture_output=True, text=True)
                times.append(time.perf_counter() - start)
                assert result.returncode == 0, result.stderr
            rows = len(result.stdout.splitlines()) - (1 if output == "table" else 0)
            print(f"hv ps -o {output}, {rows} deployments: p50 {statistics.median(times) * 1000:.0f} ms, "
                  f"max {max(times) * 1000:.0f} ms over {args.runs} runs")
        start = time.perf_counter()
        subprocess.run([HV, "--version"], env=env, capture_output=True, check=True)
        print(f"  starting hv itself (hv --version): {(time.perf_counter() - start) * 1000:.0f} ms")
        pages = []
        for _ in range(args.runs):
            start = time.perf_counter()
            api.get("/deployments/", params={"status": ["pending", "running"], "page": 2}).raise_for_status()
            pages.append(time.perf_counter() - start)
        print(f"  one page of 50 (GET /deployments/?page=2), alone: p50 {statistics.median(pages) * 1000:.0f} ms; "
              f"{-(-args.deployments // 50)} pages")
    finally:
        process.terminate()
        process.wait(30)


if __name__ == "__main__":
    main()
