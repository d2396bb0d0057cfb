"""Numbers no field can hold are 400s that say so, wherever a body carries them, never 500s."""
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
