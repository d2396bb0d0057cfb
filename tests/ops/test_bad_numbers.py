"""Numbers no field can hold (or where a string belongs) are 400s that say so, never 500s nor silently coerced."""
import pytest

from organizations.models import Role
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("raw", ["1e309", "-1e309", "1E400"])
@pytest.mark.parametrize("field", ["cluster", "priority", "cpu_required", "gpu_required", "stop_grace_seconds"])
def test_a_json_number_that_overflows_is_a_400(dev, organization, raw, field):
    cluster = ClusterFactory(organization=organization)
    body = '{"name": "x", "docker_image": "i", "cluster": %d, "%s": %s}' % (cluster.pk, field, raw)
    for path in ("/api/v1/deployments/", "/api/v1/deployments/dry-run/"):
        response = dev.generic("POST", path, body, content_type="application/json")
        assert response.status_code == 400 and "Number out of range" in response.json()["detail"], path


def test_overflowing_numbers_elsewhere_are_400s_too(member, organization):
    admin = member(Role.ADMIN)
    body = '{"name": "c", "organization": 1e309, "cpu_limit": "1", "ram_limit": "1", "gpu_limit": 0}'
    assert admin.generic("POST", "/api/v1/clusters/", body, content_type="application/json").status_code == 400
    body = '{"depends_on": [1e309], "name": "x", "docker_image": "i", "cluster": 1}'
    assert admin.generic("POST", "/api/v1/deployments/", body, content_type="application/json").status_code == 400


@pytest.mark.parametrize(("path", "query", "bound"), [
    ("/api/v1/deployments/", {"cluster": "392706363502608187392"}, "9223372036854775807"),
    ("/api/v1/deployments/", {"organization": "-9223372036854775809"}, "-9223372036854775808"),
    ("/api/v1/deployments/", {"priority": "1307674368000"}, "2147483647"),
    ("/api/v1/clusters/", {"organization": "99999999999999999999"}, "9223372036854775807"),
])
def test_a_filter_number_beyond_its_range_is_a_400_naming_the_bound(dev, path, query, bound):
    response = dev.get(path, query)
    assert response.status_code == 400
    [(name, [message])] = response.json().items()
    assert name in query and bound in message


def test_a_number_where_a_string_belongs_is_a_400(auth_client):
    response = auth_client.post("/api/v1/organizations/", {"name": 0})
    assert response.status_code == 400 and response.json() == {"name": ["Not a valid string."]}
