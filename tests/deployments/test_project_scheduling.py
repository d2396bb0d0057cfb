"""Scheduling with projects through the API: a guarantee reclaimed from a borrower in one pass, a limit that
holds work back with its reason, priority that never preempts across projects, and an exact dry run."""
import pytest

from clusters.models import ClusterQuota
from organizations.models import Project
from tests.deployments.api import DEPLOYMENTS, get, submit
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gpus(organization):
    return ClusterFactory(organization=organization, cpu_limit="8", ram_limit="64", gpu_limit=8)


@pytest.fixture
def teams(organization, gpus):
    """Two projects with four GPUs guaranteed each; research may never hold more than six."""
    vision = Project.objects.create(organization=organization, name="vision")
    research = Project.objects.create(organization=organization, name="research")
    ClusterQuota.objects.create(cluster=gpus, project=vision, guaranteed_cpu=4, guaranteed_ram=32, guaranteed_gpu=4)
    ClusterQuota.objects.create(cluster=gpus, project=research, guaranteed_cpu=4, guaranteed_ram=32, guaranteed_gpu=4,
                                limit_cpu=8, limit_ram=64, limit_gpu=6)
    return vision, research


def events(client, pk) -> list[tuple[str, str]]:
    return [(e["kind"], e["message"]) for e in client.get(f"{DEPLOYMENTS}{pk}/events/").json()["results"]]


def test_a_borrower_gives_back_a_guarantee_the_moment_its_owner_submits(admin, gpus, teams):
    vision, research = teams
    # Vision is idle: research borrows up to its limit of six GPUs, at a high priority.
    borrowed = [submit(admin, gpus, cpu="1", ram="1", gpu=3, priority=100, project=research.pk) for _ in range(2)]
    assert [get(admin, pk)["status"] for pk in borrowed] == ["running", "running"]
    # Vision asks for what it is guaranteed: it starts in the same pass, at priority 0, on what research borrowed.
    owner = submit(admin, gpus, cpu="1", ram="1", gpu=4, priority=0, project=vision.pk)
    assert get(admin, owner)["status"] == "running"
    statuses = sorted(get(admin, pk)["status"] for pk in borrowed)
    assert statuses == ["pending", "running"]  # only what was needed: research keeps three GPUs, within its four
    [evicted] = [pk for pk in borrowed if get(admin, pk)["status"] == "pending"]
    assert events(admin, evicted)[-2][1].startswith(
        f"Preempted by deployment #{owner} (project 'vision', within its guarantee) after ")


def test_priority_never_preempts_across_projects(admin, gpus, teams):
    vision, research = teams
    low = submit(admin, gpus, cpu="1", ram="1", gpu=4, priority=0, project=vision.pk)
    # Research's own running work is of its priority: nothing of its project is lower.
    submit(admin, gpus, cpu="1", ram="1", gpu=4, priority=1000, project=research.pk)
    urgent = submit(admin, gpus, cpu="1", ram="1", gpu=2, priority=1000, project=research.pk)
    body = get(admin, urgent)
    assert body["status"] == "pending" and get(admin, low)["status"] == "running"
    assert body["scheduling"]["reason"] == "resources"
    assert body["scheduling"]["project"] == {
        "id": research.pk, "usage": {"cpu": "1.000", "ram": "1.000", "gpu": 4},
        "guaranteed": {"cpu": "4.000", "ram": "32.000", "gpu": 4},
        "limit": {"cpu": "8.000", "ram": "64.000", "gpu": 6}, "borrowing": True}


def test_a_project_at_its_limit_waits_with_the_reason_and_the_dry_run_says_so_first(admin, gpus, teams):
    _, research = teams
    submit(admin, gpus, cpu="1", ram="1", gpu=6, project=research.pk)
    body = {"name": "more", "cluster": gpus.pk, "docker_image": "img:1", "gpu_required": 1, "project": research.pk}
    dry = admin.post(f"{DEPLOYMENTS}dry-run/", body, format="json").json()
    assert dry["decision"] == "wait" and dry["scheduling"]["reason"] == "quota_limit"
    assert dry["status_reason"] == "Project 'research' is at its GPU limit: 6 of 6."
    pk = admin.post(DEPLOYMENTS, body, format="json").json()["id"]
    waiting = get(admin, pk)
    assert waiting["status"] == "pending" and waiting["scheduling"]["reason"] == "quota_limit"
    assert waiting["status_reason"] == dry["status_reason"]
    assert [d["id"] for d in admin.get(f"{DEPLOYMENTS}?status=pending").json()["results"]] == [pk]


def test_with_only_the_default_project_explanations_name_it(admin, gpus):
    submit(admin, gpus, cpu="1", ram="1", gpu=8)
    pk = submit(admin, gpus, cpu="1", ram="1", gpu=1)
    project = get(admin, pk)["scheduling"]["project"]
    default = gpus.organization.default_project
    assert project == {"id": default.pk, "usage": {"cpu": "1.000", "ram": "1.000", "gpu": 8},
                       "guaranteed": {"cpu": "0.000", "ram": "0.000", "gpu": 0}, "limit": None, "borrowing": True}
