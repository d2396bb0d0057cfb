"""Pure parts of hv: the YAML of `hv apply` (dependencies by name, creation order) and `hv why`'s words."""
import pytest
from hv_cli.manifest import ManifestError, body_of, in_creation_order, load
from hv_cli.why import explain


def test_a_file_may_hold_one_deployment_a_list_or_a_deployments_key():
    assert load("name: a\ndocker_image: x\n") == [{"name": "a", "docker_image": "x"}]
    assert [s["name"] for s in load("- name: a\n- name: b\n")] == ["a", "b"]
    assert [s["name"] for s in load("deployments:\n  - name: a\n")] == ["a"]


@pytest.mark.parametrize(("text", "message"), [
    ("- name: a\n- name: a\n", "names must be unique within the file: a"),
    ("- docker_image: x\n", "every deployment needs a `name`"),
    ("just words", "expected a deployment, a list of deployments"),
    ("- name: a\n  depends_on: [ghost]\n", "a: depends_on names 'ghost', which is not in the file"),
    ("- name: a\n  depends_on: [b]\n- name: b\n  depends_on: [a]\n", "depends_on forms a cycle: a -> b -> a"),
])
def test_invalid_files_are_refused_with_the_reason(text, message):
    with pytest.raises(ManifestError, match="^" + message.replace("*", r"\*")):
        in_creation_order(load(text))


def test_dependencies_are_created_first_and_named_ones_become_ids():
    specs = in_creation_order(load("- name: serve\n  depends_on: [evaluate, 7]\n- name: evaluate\n"
                                   "  depends_on: [train]\n- name: train\n"))
    assert [s["name"] for s in specs] == ["train", "evaluate", "serve"]
    assert body_of(specs[2], {"train": 1, "evaluate": 2})["depends_on"] == [2, 7]


def test_why_reads_the_scheduling_object_as_a_person_would():
    deployment = {"id": 4, "name": "nightly", "status": "pending", "status_reason": "Needs 1 GPU, 0 free.",
                  "scheduling": {"reason": "reserved", "shortfall": {"cpu": "0.000", "ram": "2.500", "gpu": 1},
                                 "queue_position": 3, "waiting_for": [], "reserved_for": 9,
                                 "preemptible": {"cpu": "2.000", "ram": "8.000", "gpu": 0}}}
    assert explain(deployment) == [
        "#4 'nightly' is pending: Needs 1 GPU, 0 free.",
        "Why: what is free is set aside for a deployment that has waited too long.",
        "Queue position: 3 among its cluster's pending deployments.",
        "Short of: 2.5 GB RAM, 1 GPU beyond what is free now.",
        "Preemptible (lower priority, running): 2 CPU, 8 GB RAM.",
        "Reservation: what is free is held for #9.",
    ]
    cpu = {n: {"cpu": f"{n}.000", "ram": "0.000", "gpu": 0} for n in (2, 4)}
    project = {"id": 2, "usage": cpu[4], "guaranteed": cpu[2], "limit": cpu[4], "borrowing": True}
    scheduling = {**deployment["scheduling"], "reason": "quota_limit", "project": project}
    with_project = {**deployment, "scheduling": scheduling}
    assert explain(with_project)[1] == "Why: starting it would take its project above its limit on this cluster."
    assert explain(with_project)[-1] == ("Project #2: uses 4 CPU; guaranteed 2 CPU; limit 4 CPU. "
                                         "Starting it would borrow beyond the guarantee.")
    running = {**deployment, "status": "running", "scheduling": None, "status_reason": "Running on cluster 'pool'."}
    assert explain(running) == ["#4 'nightly' is running: Running on cluster 'pool'."]
