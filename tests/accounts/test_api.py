"""Auth endpoints: register, login, refresh rotation, logout, me."""
import pytest

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"


def login(api_client, username, password=PASSWORD):
    return api_client.post(LOGIN, {"username": username, "password": password})


@pytest.mark.parametrize("slash", ["", "/"])
def test_register_creates_user_with_and_without_slash(api_client, slash):
    response = api_client.post(REGISTER + slash, {"username": "ada", "email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 201
    assert set(response.json()) == {"id", "username", "email"}
    assert response.json()["username"] == "ada"


def test_register_duplicate_username_is_400_naming_username(api_client):
    UserFactory(username="ada")
    response = api_client.post(REGISTER, {"username": "ada", "email": "new@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert "username" in response.json()


def test_register_duplicate_email_differing_in_case_is_400_naming_email(api_client):
    UserFactory(email="ada@example.com")
    response = api_client.post(REGISTER, {"username": "ada2", "email": "ADA@Example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert response.json() == {"email": ["A user with that email already exists."]}


@pytest.mark.parametrize("password", ["123", "password", "12345678901", "ada-lovelace"])
def test_register_weak_password_is_400(api_client, password):
    response = api_client.post(REGISTER, {"username": "ada-lovelace", "email": "a@example.com", "password": password})
    assert response.status_code == 400
    assert response.json()["password"]


def test_register_missing_fields_names_each(api_client):
    response = api_client.post(REGISTER, {})
    assert response.status_code == 400
    assert set(response.json()) == {"username", "email", "password"}


def test_bad_json_is_400_with_detail(api_client):
    response = api_client.generic("POST", REGISTER, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_login_returns_token_pair(api_client, user):
    response = login(api_client, user.username)
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}


def test_login_with_wrong_password_is_401(api_client, user):
    assert login(api_client, user.username, "wrong-password").status_code == 401


def test_me_shows_user_with_bearer_token(api_client, user):
    access = login(api_client, user.username).json()["access"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    for path in (ME, ME + "/"):
        response = api_client.get(path)
        assert response.status_code == 200
        assert response.json() == {"id": user.id, "username": user.username, "email": user.email, "organizations": []}


def test_me_without_token_is_401(api_client):
    assert api_client.get(ME).status_code == 401


def test_refresh_rotates_and_the_used_token_stops_working(api_client, user):
    refresh = login(api_client, user.username).json()["refresh"]
    rotated = api_client.post(REFRESH, {"refresh": refresh})
    assert rotated.status_code == 200
    assert set(rotated.json()) == {"access", "refresh"}
    assert rotated.json()["refresh"] != refresh
    assert api_client.post(REFRESH, {"refresh": refresh}).status_code == 401
    assert api_client.post(REFRESH, {"refresh": rotated.json()["refresh"]}).status_code == 200


def test_logout_blacklists_refresh_token(api_client, user):
    tokens = login(api_client, user.username).json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api_client.post(LOGOUT, {"refresh": tokens["refresh"]}).status_code == 204
    api_client.credentials()
    assert api_client.post(REFRESH, {"refresh": tokens["refresh"]}).status_code == 401


def test_logout_with_someone_elses_refresh_token_is_401(api_client, user):
    other_refresh = login(api_client, UserFactory().username).json()["refresh"]
    access = login(api_client, user.username).json()["access"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert api_client.post(LOGOUT, {"refresh": other_refresh}).status_code == 401
    api_client.credentials()
    assert api_client.post(REFRESH, {"refresh": other_refresh}).status_code == 200


def test_logout_with_garbage_token_is_401(auth_client):
    assert auth_client.post(LOGOUT, {"refresh": "garbage"}).status_code == 401


def test_unknown_api_path_is_json_404(api_client):
    response = api_client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
