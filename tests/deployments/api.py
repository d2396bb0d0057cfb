"""What the deployment tests do through the API, in the words of the tests."""

DEPLOYMENTS = "/api/v1/deployments/"


def submit(client, cluster, name="job", priority=0, cpu="1", ram="1", gpu=0, **extra):
    response = client.post(DEPLOYMENTS, {"name": name, "cluster": cluster.pk, "docker_image": "registry/img:1",
                                         "priority": priority, "cpu_required": cpu, "ram_required": ram,
                                         "gpu_required": gpu, **extra})
    assert response.status_code == 201, response.content
    return response.json()["id"]


def get(client, pk) -> dict:
    response = client.get(f"{DEPLOYMENTS}{pk}/")
    assert response.status_code == 200
    return response.json()


def status(client, pk) -> str:
    return get(client, pk)["status"]


def available(client, cluster) -> tuple:
    body = client.get(f"/api/v1/clusters/{cluster.pk}/").json()
    return body["cpu_available"], body["ram_available"], body["gpu_available"]


def action(client, pk, name):
    return client.post(f"{DEPLOYMENTS}{pk}/{name}/")
