"""What an operation does not declare is refused with a message, never ignored: queries, paths and bodies.

A query parameter the operation does not declare, a blank or fractional number, a single-valued parameter given
twice: each is a 400 that names it. Path ids are digits, so a sibling action's path (`/deployments/dry-run/`)
is that action, and another method there is a 405. A number where a string belongs is a 400, not a string.
"""
import pytest
from django.urls import get_resolver

from hypervisor_mlops.api.queries import StrictQueryParameters
from organizations.models import Role
from tests.deployments.api import DEPLOYMENTS, submit
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

CLUSTERS, ORGANIZATIONS = "/api/v1/clusters/", "/api/v1/organizations/"


@pytest.mark.parametrize("path", [CLUSTERS, ORGANIZATIONS, DEPLOYMENTS, "/api/v1/auth/me/"])
def test_an_unknown_query_parameter_is_a_400_naming_it(dev, path):
    response = dev.get(path, {"orgnization": "1"})
    assert response.status_code == 400
    assert "Unknown query parameter: 'orgnization'." in response.json()["detail"]


def test_the_message_lists_what_the_operation_accepts(dev):
    response = dev.get(f"{CLUSTERS}?=1&b=2")
    assert response.status_code == 400
    detail = "Unknown query parameters: '', 'b'. This operation accepts organization, page."
    assert response.json() == {"detail": detail}
    me = dev.get("/api/v1/auth/me/?x=1")
    assert me.json() == {"detail": "Unknown query parameter: 'x'. This operation takes no query parameters."}


def test_detail_and_create_refuse_a_list_filter(dev, cluster):
    pk = submit(dev, cluster)
    # A filter on a detail would have turned the object into a 404 when it did not match.
    assert dev.get(f"{DEPLOYMENTS}{pk}/", {"status": "completed"}).status_code == 400
    created = dev.post(f"{DEPLOYMENTS}?priority=5", {"name": "x", "cluster": cluster.pk, "docker_image": "i"})
    assert created.status_code == 400 and "'priority'" in created.json()["detail"]


def test_an_anonymous_caller_learns_401_before_the_query_is_judged(api_client):
    assert api_client.get(CLUSTERS, {"bogus": "1"}).status_code == 401


def test_a_method_the_path_does_not_take_is_405_whatever_the_query(dev):
    response = dev.generic("TRACE", f"{CLUSTERS}?bogus=1")
    assert response.status_code == 405


@pytest.mark.parametrize("value", ["", "1.0", "+1", "1e3", " 1", "one"])
@pytest.mark.parametrize(("path", "name"), [(CLUSTERS, "organization"), (DEPLOYMENTS, "cluster"),
                                            (DEPLOYMENTS, "organization"), (DEPLOYMENTS, "priority")])
def test_a_whole_number_filter_takes_digits_only(dev, path, name, value):
    response = dev.get(path, {name: value})
    assert response.status_code == 400
    assert response.json() == {name: ["Enter a whole number."]}


def test_a_single_valued_parameter_given_twice_is_a_400(dev, organization):
    response = dev.get(f"{DEPLOYMENTS}?organization={organization.pk}&organization={organization.pk}")
    assert response.status_code == 400 and response.json() == {"organization": ["Give one value, not 2."]}


def test_declared_parameters_keep_working(dev, cluster, organization):
    running = submit(dev, cluster, gpu=2, priority=3)
    waiting = submit(dev, cluster, gpu=2, priority=1)
    response = dev.get(f"{DEPLOYMENTS}?status=pending&status=running&cluster={cluster.pk}"
                       f"&organization={organization.pk}&priority=-0&page=1")
    assert response.status_code == 200 and response.json()["count"] == 0
    both = dev.get(f"{DEPLOYMENTS}?status=pending&status=running&cluster={cluster.pk}&page=1").json()
    assert sorted(d["id"] for d in both["results"]) == sorted([running, waiting])
    assert dev.get(CLUSTERS, {"organization": organization.pk, "page": 1}).json()["count"] == 1
    assert dev.get(ORGANIZATIONS, {"page": 1}).json()["count"] == 1
    for path in (f"{ORGANIZATIONS}{organization.pk}/members/", f"{DEPLOYMENTS}{running}/events/",
                 f"{CLUSTERS}{cluster.pk}/agents/"):
        assert dev.get(path, {"page": 1}).status_code == 200, path
        assert dev.get(path, {"tail": 1}).status_code == 400, path
    assert dev.get(f"{DEPLOYMENTS}{running}/logs/", {"tail": 5}).json() == {"lines": [], "truncated": False}


@pytest.mark.parametrize("query", ["tail=", "tail=0.0", "tail=1.5", "tail=-1", "tail=1&tail=2"])
def test_a_log_tail_is_one_whole_number(dev, cluster, query):
    pk = submit(dev, cluster)
    response = dev.get(f"{DEPLOYMENTS}{pk}/logs/?{query}")
    assert response.status_code == 400 and list(response.json()) == ["tail"], response.json()


@pytest.mark.parametrize("page", ["", "last", "1.0", "0", "2"])
def test_a_page_that_is_not_a_page_number_of_the_list_is_404(dev, page):
    response = dev.get(ORGANIZATIONS, {"page": page})
    assert response.status_code == 404 and response.json() == {"detail": "Invalid page."}


def test_a_sibling_action_path_is_that_action_not_an_id(member):
    admin = member(Role.ADMIN)
    dry_run = admin.get(f"{DEPLOYMENTS}dry-run/")
    assert dry_run.status_code == 405 and dry_run.json() == {"detail": 'Method "GET" not allowed.'}
    assert admin.patch(f"{DEPLOYMENTS}dry-run/", {}).status_code == 405
    assert admin.patch(f"{ORGANIZATIONS}join/", {}).status_code == 405
    assert admin.get(f"{DEPLOYMENTS}abc/").status_code == 404


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_a_member_id_beyond_64_bits_is_a_404(member, organization, method):
    admin = member(Role.ADMIN)
    response = getattr(admin, method)(f"{ORGANIZATIONS}{organization.pk}/members/{10**25}/", {"role": "admin"})
    assert response.status_code == 404 and response.json() == {"detail": "No such member in this organization."}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("username", 12345678, "Not a valid string."),
    ("password", 1.5e300, "Not a valid string."),
    ("email", 0, "Enter a valid email address."),
    ("email", "a" * 250 + "@x.io", "Ensure this field has no more than 254 characters."),
    ("username", " newcomer", "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ "
                              "characters."),
])
def test_registering_with_a_number_or_an_overlong_email_is_a_400(api_client, field, value, message):
    body = {"username": "newcomer", "email": "newcomer@example.com", "password": PASSWORD, field: value}
    response = api_client.post("/api/v1/auth/register/", body, format="json")
    assert response.status_code == 400 and response.json() == {field: [message]}


def test_a_name_is_measured_as_sent_not_as_trimmed(auth_client):
    response = auth_client.post("/api/v1/organizations/", {"name": "\u00a0" + "*" * 200}, format="json")
    assert response.status_code == 400
    assert response.json() == {"name": ["Ensure this field has no more than 200 characters."]}
    assert auth_client.post("/api/v1/organizations/", {"name": " ok "}, format="json").json()["name"] == "ok"


def test_a_number_for_a_name_or_an_image_is_a_400(member, organization, cluster):
    admin = member(Role.ADMIN)
    body = {"name": 7, "organization": organization.pk, "cpu_limit": "1", "ram_limit": "1", "gpu_limit": 0}
    assert admin.post(CLUSTERS, body, format="json").json() == {"name": ["Not a valid string."]}
    for field in ("name", "docker_image"):
        body = {"name": "x", "docker_image": "img:1", "cluster": cluster.pk, field: 1}
        response = admin.post(DEPLOYMENTS, body, format="json")
        assert response.status_code == 400 and response.json() == {field: ["Not a valid string."]}


def test_every_api_view_refuses_undeclared_query_parameters():
    def views(resolver, prefix=""):
        for pattern in resolver.url_patterns:
            route = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                yield from views(pattern, route)
            elif route.startswith("api/"):
                yield route, pattern.callback

    found = list(views(get_resolver()))
    assert found
    for route, callback in found:
        assert issubclass(callback.cls, StrictQueryParameters), route


def test_the_schema_types_path_ids_as_integers_and_documents_the_strictness(schema):
    for path, item in schema["paths"].items():
        for parameter in item.get("parameters", []):
            assert parameter["type"] == "integer", (path, parameter)
        for method, operation in item.items():
            if path.startswith("/api/") and method != "parameters":
                assert "400" in operation["responses"], (method, path)
    for path in (f"{DEPLOYMENTS}{{id}}/", f"{ORGANIZATIONS}{{id}}/"):
        operations = schema["paths"][path]
        assert "405" in operations["get"]["responses"] and "405" in operations["patch"]["responses"], path
    for path, names in ((f"{ORGANIZATIONS}{{id}}/members/", ["page"]), (f"{DEPLOYMENTS}{{id}}/events/", ["page", "watch"]),
                        (f"{CLUSTERS}{{id}}/agents/", ["page"])):
        assert [p["name"] for p in schema["paths"][path]["get"]["parameters"]] == names, path
