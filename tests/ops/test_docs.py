"""The OpenAPI schema, Swagger UI and ReDoc."""
import pytest

pytestmark = pytest.mark.django_db


def test_schema_lists_the_auth_paths(schema):
    auth = {f"/api/v1/auth/{name}/" for name in ("register", "login", "refresh", "logout", "me")}
    assert auth <= set(schema["paths"])


def test_schema_offers_the_bearer_scheme(schema):
    assert schema["securityDefinitions"]["Bearer"] == {
        "type": "apiKey",
        "name": "Authorization",
        "in": "header",
        "description": "An access token from /api/v1/auth/login, as `Bearer <token>`.",
    }


# Actions that take no body: the path alone says what to do.
BODILESS_ACTIONS = ("/leave/", "/rotate-invite-code/", "/complete/", "/fail/", "/cancel/")


def test_schema_documents_every_request_body(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method in {"post", "put", "patch"} and not path.endswith(BODILESS_ACTIONS):
                bodies = [p for p in operation.get("parameters", []) if p["in"] == "body"]
                assert bodies, f"{method.upper()} {path} has no documented body"


@pytest.mark.parametrize("path", ["/swagger/", "/redoc/"])
def test_docs_pages_render(api_client, path):
    response = api_client.get(path)
    assert response.status_code == 200
    assert b"<title>hypervisor-mlops API</title>" in response.content
