"""The OpenAPI generator: path ids typed as the routes match them."""
import re

from drf_yasg import openapi
from drf_yasg.generators import OpenAPISchemaGenerator


class IntegerIdsGenerator(OpenAPISchemaGenerator):
    """Path ids that the routes match as digits only are integers, not bare strings, so clients send numbers."""

    def get_path_parameters(self, path, view_cls):
        parameters = super().get_path_parameters(path, view_cls)
        # drf-yasg names the lookup `id`; an action's own path variables are in its url_path.
        patterns = {"id": getattr(view_cls, "lookup_value_regex", None)}
        for extra in getattr(view_cls, "get_extra_actions", list)():
            patterns.update(re.findall(r"\(\?P<(\w+)>([^)]*)\)", extra.url_path))
        for parameter in parameters:
            if patterns.get(parameter.name) == r"\d+":
                parameter.type, parameter.minimum = openapi.TYPE_INTEGER, 0
                parameter.pop("pattern", None)
        return parameters
