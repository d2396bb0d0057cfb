"""Fuzz every operation of the API from its own schema (schemathesis).

Checks: all of schemathesis's (as `schemathesis run --checks all`): never a 5xx; every status and content type
documented, and every body of the documented shape; requests the schema calls invalid refused and valid ones
accepted (with the 400s that depend on state allowed by ../schemathesis.toml); an operation that declares the
Bearer requirement refuses requests without a valid token; and the rest.

The schema is the one the service serves at /swagger.json, loaded in-process from the WSGI app. Requests carry
the JWT of a user who is admin of an organization (two clusters, one with an agent; running, pending, completed
and failed deployments; a second member) and developer of a second one; a third organization is someone
else's. The agent-facing API gets the agent's token instead. In half of
the generated cases, every id, invite code, credential and resource amount is swapped for a real one, so the
fuzzing reaches real objects rather than only 404s. Each operation is its own transactional test, so scheduling
runs on commit as in production and every operation starts from the same data.
"""
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.checks import load_all_checks
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import content_type_conformance as content_type_conformance_of_schemathesis
from schemathesis.specs.openapi.checks import (
    response_schema_conformance as response_schema_conformance_of_schemathesis,
)

from agents.registration import register_agent
from deployments import lifecycle
from deployments.models import Status
from hypervisor_mlops.wsgi import application
from organizations.models import ProjectMembership, Role
from tests.factories import (
    PASSWORD,
    ClusterFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

MAX_EXAMPLES = 40


load_all_checks()


def content_type_conformance(ctx, response, case):
    """Swagger 2.0 declares one media type per operation, JSON for its errors too; a bodiless 204 has none."""
    if response.status_code == 204 and not response.content:
        return None
    return content_type_conformance_of_schemathesis(ctx, response, case)


def response_schema_conformance(ctx, response, case):
    """Swagger 2.0 gives a status one schema, the JSON one; a stream's events (`text/event-stream`) are described
    in words."""
    if response.headers.get("content-type", [""])[0].startswith("text/event-stream"):
        return None
    return response_schema_conformance_of_schemathesis(ctx, response, case)


REPLACED = {content_type_conformance_of_schemathesis: content_type_conformance,
            response_schema_conformance_of_schemathesis: response_schema_conformance}
CHECKS = [REPLACED.get(check, check) for check in REGISTERED_CHECKS.get_all()]
# Answers that say nothing about the operation itself.
BOUNCED = {401, 404, 405, 415}

schema = schemathesis.openapi.from_wsgi("/swagger.json", application)


@dataclass
class World:
    """The real objects a generated request may name, by the parameter or body field that names them."""

    headers: dict[str, str] = field(default_factory=dict)
    agent_headers: dict[str, str] = field(default_factory=dict)
    ids: dict[str, list[int]] = field(default_factory=dict)
    invite_codes: list[str] = field(default_factory=list)
    credentials: dict[str, str] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)


# Filled by the `world` fixture before any case is drawn; the hook below reads it while drawing.
WORLD = World()

# Which pool of real ids a path's `{id}` is drawn from.
PATH_POOLS = {"/api/v1/organizations/": "organization", "/api/v1/clusters/": "cluster",
              "/api/v1/deployments/": "deployment", "/api/v1/projects/": "project"}
# Real cases get resource amounts around the seeded capacity (8 CPU, 32 GB, 2 GPU), so that both fitting and
# oversized requests occur: the schema types cpu and ram as bare strings, so generated ones are hardly ever
# numbers, and generated GPU counts are mostly far beyond any cluster.
RESOURCES = {
    **dict.fromkeys(("cpu_limit", "ram_limit", "cpu_required", "ram_required"),
                    st.decimals(min_value=0, max_value=10, places=3).map(str)),
    **dict.fromkeys(("gpu_limit", "gpu_required"), st.integers(min_value=0, max_value=3)),
}


def _pool_for_path(path: str) -> str | None:
    return next((pool for prefix, pool in PATH_POOLS.items() if path.startswith(prefix)), None)


@st.composite
def _with_real_ids(draw, case):
    """Half of the cases, everything that names an object (and every resource amount) is made real.

    All at once rather than field by field: a request only gets past validation when all its references are.
    """
    # Real first: the simplest example Hypothesis draws is the first choice, so every operation reaches
    # real objects early rather than by luck. Never a case meant to be invalid: a real value would mend it.
    if (case.meta and case.meta.generation.mode.is_negative) or not draw(st.sampled_from([True, False])):
        return case
    pool = _pool_for_path(case.path)
    path_parameters = case.path_parameters or {}
    if pool and "id" in path_parameters:
        path_parameters["id"] = draw(st.sampled_from(WORLD.ids[pool]))
    if "user_id" in path_parameters:
        path_parameters["user_id"] = draw(st.sampled_from(WORLD.ids["user"]))
    if "project_id" in path_parameters:
        path_parameters["project_id"] = draw(st.sampled_from(WORLD.ids["project"]))
    if "agent_id" in path_parameters:
        # An agent is reached only through its own cluster.
        path_parameters["id"], path_parameters["agent_id"] = draw(st.sampled_from(WORLD.ids["agent"]))
    for name in ("cluster", "organization", "project"):
        if name in (case.query or {}):
            case.query[name] = str(draw(st.sampled_from(WORLD.ids[name])))
    if isinstance(case.body, dict):
        for name in ("cluster", "organization", "project"):
            if name in case.body:
                case.body[name] = draw(st.sampled_from(WORLD.ids[name]))
        for name, amounts in RESOURCES.items():
            if name in case.body:
                case.body[name] = draw(amounts)
        if "depends_on" in case.body:
            case.body["depends_on"] = draw(st.lists(st.sampled_from(WORLD.ids["deployment"]), max_size=3))
        if "invite_code" in case.body:
            case.body["invite_code"] = draw(st.sampled_from(WORLD.invite_codes))
        # Real credentials and a real refresh token, so login, refresh and logout also succeed.
        for name, value in WORLD.credentials.items():
            if name in case.body:
                case.body[name] = value
    return case


@schema.hook
def flatmap_case(context, case):
    return _with_real_ids(case)


@schema.hook
def after_call(context, case, response):
    WORLD.statuses[response.status_code] += 1


@pytest.fixture
def world(db):
    """An admin with a busy organization, a seat in a second one, and an organization they are not in."""
    admin = UserFactory()
    home = OrganizationFactory()
    MembershipFactory(organization=home, user=admin, role=Role.ADMIN)
    colleague = MembershipFactory(organization=home, role=Role.DEVELOPER).user
    elsewhere = OrganizationFactory()
    MembershipFactory(organization=elsewhere, user=admin, role=Role.DEVELOPER)
    stranger = OrganizationFactory()
    MembershipFactory(organization=stranger, role=Role.ADMIN)

    big = ClusterFactory(organization=home, cpu_limit=Decimal("8"), ram_limit=Decimal("32"), gpu_limit=2)
    empty = ClusterFactory(organization=home)
    theirs = ClusterFactory(organization=stranger)

    def deploy(cluster, name, **fields):
        # Each create commits and schedules its cluster on commit, as the API does.
        return lifecycle.create_deployment(cluster=cluster, created_by=admin, name=name,
                                          docker_image="registry/img:1", **fields)

    done = deploy(big, "done", cpu_required=Decimal("1"))
    failed = deploy(big, "failed", cpu_required=Decimal("1"))
    lifecycle.finish_deployment(deployment_id=done.pk, status=Status.COMPLETED, actor=admin)
    lifecycle.finish_deployment(deployment_id=failed.pk, status=Status.FAILED, actor=admin)
    running = deploy(big, "serve", cpu_required=Decimal("2.5"), ram_required=Decimal("4"), gpu_required=2)
    queued = deploy(big, "queued", gpu_required=1, priority=-5)
    waiting = deploy(big, "waiting", cpu_required=Decimal("0.5"), depends_on=[running])
    other = deploy(theirs, "theirs")
    research = ProjectFactory(organization=home, name="research", max_priority=10)
    ProjectMembership.objects.create(project=research, user=colleague)
    agent, agent_token = register_agent(cluster_id=big.pk, name="host")

    WORLD.headers = {"Authorization": f"Bearer {RefreshToken.for_user(admin).access_token}"}
    WORLD.agent_headers = {"Authorization": f"Bearer {agent_token}"}
    WORLD.ids = {
        "organization": [home.pk, elsewhere.pk, stranger.pk],
        "cluster": [big.pk, empty.pk, theirs.pk],
        "deployment": [done.pk, failed.pk, running.pk, queued.pk, waiting.pk, other.pk],
        "user": [admin.pk, colleague.pk],
        "project": [home.default_project.pk, research.pk, elsewhere.default_project.pk, stranger.default_project.pk],
        "agent": [(big.pk, agent.pk)],
    }
    WORLD.invite_codes = [elsewhere.invite_code, stranger.invite_code]
    WORLD.credentials = {
        "username": admin.username, "password": PASSWORD, "refresh": str(RefreshToken.for_user(admin)),
    }
    WORLD.statuses = Counter()
    yield WORLD
    # A run where every request bounced off authentication, routing or the method would prove nothing.
    reached = sum(n for status, n in WORLD.statuses.items() if status not in BOUNCED)
    assert reached, f"no request reached a view: {dict(WORLD.statuses)}"


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    # The fixture is per operation on purpose (every operation starts from the same data), not per example.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms_to_its_schema(case, world, settings):
    # A stream (`?watch=true`, `?follow=true`) sends what there is and closes at once: this client reads whole bodies.
    settings.STREAM_MAX_SECONDS = 0
    # The agent-facing API is the agent's, with its own token; a user's JWT is only ever a 401 there.
    headers = world.agent_headers if case.path.startswith("/api/v1/agent/") else world.headers
    if case.meta and case.meta.is_negative_at(ParameterLocation.HEADER) and "Authorization" not in (case.headers or {}):
        # A case made invalid by leaving out the token is sent without one: adding it back would send a request
        # schemathesis still believes invalid (then it expects, say, read-only fields in the body refused).
        headers = {}
    case.call_and_validate(headers=headers, checks=CHECKS)
