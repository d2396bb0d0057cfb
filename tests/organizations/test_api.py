"""Organizations over HTTP: the role-by-endpoint matrix, invite codes, members and isolation."""
import pytest
from rest_framework.test import APIClient

from organizations.models import Membership, Organization, Role
from tests.conftest import client_for
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

ADMIN, DEVELOPER, VIEWER, OUTSIDER, ANONYMOUS = "admin", "developer", "viewer", "outsider", "anonymous"
ACTORS = (ADMIN, DEVELOPER, VIEWER, OUTSIDER, ANONYMOUS)


@pytest.fixture
def world(organization):
    """An organization with a founding admin and a plain developer, plus the actor under test."""
    founder = MembershipFactory(organization=organization, role=Role.ADMIN).user
    colleague = MembershipFactory(organization=organization, role=Role.DEVELOPER).user
    return {"organization": organization, "founder": founder, "colleague": colleague}


def actor_client(actor: str, organization: Organization) -> APIClient:
    if actor == ANONYMOUS:
        return APIClient()
    user = UserFactory()
    if actor != OUTSIDER:
        MembershipFactory(organization=organization, user=user, role=actor)
    client = client_for(user)
    client.user = user
    return client


def request(client, method, path, body=None):
    return getattr(client, method)(path, body, format="json") if body is not None else getattr(client, method)(path)


def expect(admin: int, *, developer: int | None = None, outsider: int = 404) -> dict[str, int]:
    """Expected status per actor: developers and viewers get `developer` (by default what admins get),
    non-members `outsider`, and anonymous callers always 401."""
    others = admin if developer is None else developer
    return {ADMIN: admin, DEVELOPER: others, VIEWER: others, OUTSIDER: outsider, ANONYMOUS: 401}


MATRIX = [
    # (method, path template, body, {actor: expected status})
    ("get", "/api/v1/organizations/", None, expect(200, outsider=200)),
    ("post", "/api/v1/organizations/", {"name": "new"}, expect(201, outsider=201)),
    ("get", "/api/v1/organizations/{org}/", None, expect(200)),
    ("patch", "/api/v1/organizations/{org}/", {"name": "renamed"}, expect(200, developer=403)),
    ("post", "/api/v1/organizations/{org}/join/", {"invite_code": "{code}"}, expect(200, outsider=200)),
    ("post", "/api/v1/organizations/join/", {"invite_code": "{code}"}, expect(200, outsider=200)),
    ("get", "/api/v1/organizations/{org}/members/", None, expect(200)),
    ("patch", "/api/v1/organizations/{org}/members/{colleague}/", {"role": "viewer"}, expect(200, developer=403)),
    ("delete", "/api/v1/organizations/{org}/members/{colleague}/", None, expect(204, developer=403)),
    ("post", "/api/v1/organizations/{org}/rotate-invite-code/", None, expect(200, developer=403)),
    ("post", "/api/v1/organizations/{org}/leave/", None, expect(204)),
    ("delete", "/api/v1/organizations/{org}/", None, expect(405, outsider=405)),
]


@pytest.mark.parametrize("method,template,body,expected", MATRIX, ids=[f"{m} {t}" for m, t, _, _ in MATRIX])
@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("slash", ["/", ""])
def test_role_matrix(world, actor, method, template, body, expected, slash):
    organization = world["organization"]
    client = actor_client(actor, organization)
    values = {"org": organization.pk, "colleague": world["colleague"].pk, "code": organization.invite_code}
    path = template.format(**values)
    path = path if slash else path.rstrip("/")
    if body is not None:
        body = {key: value.format(**values) for key, value in body.items()}
    response = request(client, method, path, body)
    assert response.status_code == expected[actor], response.content


def test_create_makes_the_creator_admin_and_shows_the_code(auth_client, user):
    response = auth_client.post("/api/v1/organizations/", {"name": "Acme"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "invite_code", "role", "created_at"}
    assert body["role"] == "admin" and body["name"] == "Acme" and len(body["invite_code"]) >= 16
    assert Membership.objects.get(user=user, organization_id=body["id"]).role == Role.ADMIN


def test_invite_code_is_shown_to_admins_only(organization, member):
    assert member(Role.ADMIN).get(f"/api/v1/organizations/{organization.pk}/").json()["invite_code"] == (
        organization.invite_code
    )
    for role in (Role.DEVELOPER, Role.VIEWER):
        for response in (
            member(role).get(f"/api/v1/organizations/{organization.pk}/"),
            member(role).get("/api/v1/organizations/"),
        ):
            body = response.json()
            shown = body["results"][0] if "results" in body else body
            assert shown["invite_code"] is None
            assert organization.invite_code not in response.content.decode()


def test_list_shows_each_organization_with_the_callers_role(user, auth_client):
    first, second = OrganizationFactory(name="first"), OrganizationFactory(name="second")
    MembershipFactory(user=user, organization=first, role=Role.VIEWER)
    MembershipFactory(user=user, organization=second, role=Role.ADMIN)
    OrganizationFactory(name="not mine")
    body = auth_client.get("/api/v1/organizations").json()
    assert body["count"] == 2
    assert [(o["name"], o["role"]) for o in body["results"]] == [("first", "viewer"), ("second", "admin")]
    me = auth_client.get("/api/v1/auth/me").json()
    assert me["organizations"] == [
        {"id": first.pk, "name": "first", "role": "viewer"},
        {"id": second.pk, "name": "second", "role": "admin"},
    ]


def test_join_by_code_makes_a_developer_and_twice_is_harmless(organization, auth_client, user):
    first = auth_client.post("/api/v1/organizations/join/", {"invite_code": organization.invite_code})
    assert first.status_code == 200
    assert first.json() == {
        "organization": organization.pk,
        "role": "developer",
        "already_member": False,
        "detail": "Joined the organization.",
    }
    again = auth_client.post(f"/api/v1/organizations/{organization.pk}/join/", {"invite_code": organization.invite_code})
    assert again.status_code == 200
    assert again.json()["already_member"] is True
    assert again.json()["detail"] == "You are already a member of this organization."
    assert Membership.objects.filter(user=user, organization=organization).count() == 1


def test_joining_does_not_change_an_existing_role(organization, member):
    admin = member(Role.ADMIN)
    response = admin.post("/api/v1/organizations/join/", {"invite_code": organization.invite_code})
    assert response.json()["role"] == "admin"


@pytest.mark.parametrize("path", ["/api/v1/organizations/join/", "/api/v1/organizations/{org}/join/",
                                  "/api/v1/organizations/999999/join/"])
def test_wrong_code_is_400_that_reveals_nothing(organization, auth_client, path):
    response = auth_client.post(path.format(org=organization.pk), {"invite_code": "not-the-code"})
    assert response.status_code == 400
    assert response.json() == {"invite_code": ["Invalid invite code."]}


def test_right_code_for_another_organization_is_the_same_400(organization, auth_client):
    other = OrganizationFactory()
    response = auth_client.post(f"/api/v1/organizations/{other.pk}/join/", {"invite_code": organization.invite_code})
    assert response.status_code == 400
    assert response.json() == {"invite_code": ["Invalid invite code."]}


def test_join_without_code_is_400(auth_client):
    response = auth_client.post("/api/v1/organizations/join/", {})
    assert response.status_code == 400
    assert response.json() == {"invite_code": ["This field is required."]}


def test_rotation_replaces_the_code_and_the_old_one_stops_working(organization, member, auth_client):
    old = organization.invite_code
    response = member(Role.ADMIN).post(f"/api/v1/organizations/{organization.pk}/rotate-invite-code/")
    assert response.status_code == 200
    new = response.json()["invite_code"]
    assert new != old and len(new) >= 16
    assert auth_client.post("/api/v1/organizations/join/", {"invite_code": old}).status_code == 400
    assert auth_client.post("/api/v1/organizations/join/", {"invite_code": new}).status_code == 200


def test_members_lists_users_with_roles(organization, member):
    admin = member(Role.ADMIN)
    viewer = member(Role.VIEWER)
    body = viewer.get(f"/api/v1/organizations/{organization.pk}/members/").json()
    assert [(m["user"], m["username"], m["role"]) for m in body["results"]] == [
        (admin.user.pk, admin.user.username, "admin"),
        (viewer.user.pk, viewer.user.username, "viewer"),
    ]
    assert set(body["results"][0]) == {"user", "username", "role", "joined_at"}


def test_admin_changes_a_role(organization, member):
    admin, developer = member(Role.ADMIN), member(Role.DEVELOPER)
    path = f"/api/v1/organizations/{organization.pk}/members/{developer.user.pk}/"
    response = admin.patch(path, {"role": "viewer"})
    assert response.status_code == 200
    assert response.json()["role"] == "viewer"
    assert admin.patch(path, {"role": "owner"}).status_code == 400


def test_unknown_member_is_404(organization, member):
    response = member(Role.ADMIN).patch(f"/api/v1/organizations/{organization.pk}/members/999999/", {"role": "viewer"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    "method,suffix,body",
    [("patch", "members/{me}/", {"role": "developer"}), ("delete", "members/{me}/", None), ("post", "leave/", None)],
)
def test_the_last_admin_cannot_be_demoted_removed_or_leave(organization, member, method, suffix, body):
    admin = member(Role.ADMIN)
    member(Role.DEVELOPER)
    path = f"/api/v1/organizations/{organization.pk}/" + suffix.format(me=admin.user.pk)
    response = request(admin, method, path, body)
    assert response.status_code == 409
    assert "last admin" in response.json()["detail"]
    assert Membership.objects.get(user=admin.user, organization=organization).role == Role.ADMIN


def test_an_admin_can_go_when_another_admin_remains(organization, member):
    first, second = member(Role.ADMIN), member(Role.ADMIN)
    path = f"/api/v1/organizations/{organization.pk}/members/{second.user.pk}/"
    assert first.patch(path, {"role": "viewer"}).status_code == 200
    assert first.post(f"/api/v1/organizations/{organization.pk}/leave/").status_code == 409


def test_join_attempts_are_throttled_per_client_address(auth_client, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/min"},
    }
    codes = [auth_client.post("/api/v1/organizations/join/", {"invite_code": f"guess{n}"}).status_code for n in range(4)]
    assert codes == [400, 400, 400, 429]


def test_lookalike_organizations_stay_isolated():
    acme, acme2 = OrganizationFactory(name="Acme"), OrganizationFactory(name="Acme ")
    alice, bob = UserFactory(), UserFactory()
    MembershipFactory(user=alice, organization=acme, role=Role.ADMIN)
    MembershipFactory(user=bob, organization=acme2, role=Role.ADMIN)
    alice_client = client_for(alice)
    listing = alice_client.get("/api/v1/organizations/").json()
    assert [o["id"] for o in listing["results"]] == [acme.pk]
    for method, path, body in [
        ("get", f"/api/v1/organizations/{acme2.pk}/", None),
        ("patch", f"/api/v1/organizations/{acme2.pk}/", {"name": "mine now"}),
        ("get", f"/api/v1/organizations/{acme2.pk}/members/", None),
        ("patch", f"/api/v1/organizations/{acme2.pk}/members/{bob.pk}/", {"role": "viewer"}),
        ("delete", f"/api/v1/organizations/{acme2.pk}/members/{bob.pk}/", None),
        ("post", f"/api/v1/organizations/{acme2.pk}/rotate-invite-code/", None),
    ]:
        response = request(alice_client, method, path, body)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "No Organization matches the given query."}
        assert acme2.invite_code not in response.content.decode()
    acme2.refresh_from_db()
    assert acme2.name == "Acme " and Membership.objects.get(user=bob).role == Role.ADMIN
