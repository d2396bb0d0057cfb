"""The API's routers: every route answers with and without its trailing slash, with no redirect."""
from rest_framework.routers import DefaultRouter


class OptionalSlashRouter(DefaultRouter):
    include_root_view = False

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
