"""The OpenAPI document states every answer an operation can give, errors and their bodies included.

drf_yasg documents an operation's success only. Here each operation also gets, from what the view itself does:
400 when it reads a body or a query (every API view refuses a query parameter it does not declare), 401 when it
authenticates, 403 when a role decides, 404 when it names an object or pages a list, 415 when it parses a body,
429 when it is throttled (503 when its throttle guards sign-in), 405 when `{id}` spelt as a sibling action's
path reaches that action with a method it does not take. 409s are declared by the views that raise Conflict; a
status a view declares with words only gets the error body here. Query filters are typed as they are validated
(whole numbers, choices); path ids are typed in `schema.IntegerIdsGenerator` (drf-yasg imports this module while
its generators are still loading).
"""
import django_filters
from django import forms
from drf_yasg import openapi
from drf_yasg.inspectors import FilterInspector, NotHandled, SwaggerAutoSchema

from .queries import StrictQueryParameters
from .throttling import ClientAddressRateThrottle

# DRF's two error shapes (API.md, Conventions).
DETAIL = openapi.Schema(
    type=openapi.TYPE_OBJECT, required=["detail"],
    properties={"detail": openapi.Schema(type=openapi.TYPE_STRING)},
)
INVALID = openapi.Schema(
    type=openapi.TYPE_OBJECT,
    description="Each invalid field (or `non_field_errors`) with its messages, or `detail` for the request as a whole.",
    properties={"detail": openapi.Schema(type=openapi.TYPE_STRING)},
    additional_properties=True,
)
ERRORS = {
    "400": ("Invalid input.", INVALID),
    "401": ("Not authenticated: no, an invalid or an expired token.", DETAIL),
    "403": ("Authenticated, but the caller's role does not allow this.", DETAIL),
    "404": ("No such object, or one of an organization the caller is not in; or no such page.", DETAIL),
    "405": ("The path names a sibling action (say `dry-run` for an id), which does not take this method.", DETAIL),
    "409": ("The request conflicts with the current state.", DETAIL),
    "415": ("The body is not JSON.", DETAIL),
    "429": ("Throttled; Retry-After says when to come back.", DETAIL),
    "503": ("Briefly unavailable.", DETAIL),
}
BODY_METHODS = {"POST", "PUT", "PATCH"}


class ErrorsAutoSchema(SwaggerAutoSchema):
    def get_query_serializer(self):
        declared = getattr(self.view, "query_serializers", {}).get(getattr(self.view, "action", None))
        return super().get_query_serializer() or (declared() if declared else None)

    def get_produces(self):
        # An action that also answers as a stream (`?follow=true`, `?watch=true`, see api/sse.py) says so.
        if getattr(self.view, "action", None) in getattr(self.view, "stream_parameters", {}):
            return [*super().get_produces(), "text/event-stream"]
        return super().get_produces()

    def get_operation(self, operation_keys=None):
        operation = super().get_operation(operation_keys)
        parameters = operation.get("parameters", [])
        body = [p for p in parameters if p.in_ == openapi.IN_BODY]
        query = {p.name for p in parameters if p.in_ == openapi.IN_QUERY}
        if body and getattr(self.view, "action", None) == "partial_update":
            # The definition is shared with the full representation; a partial update requires none of it.
            partial = openapi.Schema(**{**openapi.resolve_ref(body[0].schema, self.components)})
            partial.pop("required", None)
            body[0].schema = partial
        if body and not openapi.resolve_ref(body[0].schema, self.components).get("required"):
            # Every field optional (a partial update, an agent's bare heartbeat): no body is a valid request too.
            body[0].required = False
        statuses = set()
        if body or query or isinstance(self.view, StrictQueryParameters):
            statuses.add("400")
        if body:
            statuses.add("415")
        if self.view.get_authenticators():
            statuses.add("401")
        if self._role_decides():
            statuses.add("403")
        if "{" in self.path or "page" in query:
            statuses.add("404")
        if self._shadowed_by_a_sibling_action():
            statuses.add("405")
        throttles = self.view.get_throttles()
        if throttles:
            statuses.add("429")
        if any(isinstance(throttle, ClientAddressRateThrottle) for throttle in throttles):
            statuses.add("503")  # sign-in refuses to go unthrottled while the counters are unreachable
        responses = operation.responses
        for status in statuses:
            responses.setdefault(status, None)
        for status, response in list(responses.items()):
            if status in ERRORS and not getattr(response, "schema", None):
                description, schema = ERRORS[status]
                words = response if isinstance(response, str) else getattr(response, "description", "")
                responses[status] = openapi.Response(description=words or description, schema=schema)
        return operation

    def _shadowed_by_a_sibling_action(self) -> bool:
        # `/deployments/dry-run/` is the dry-run action, not deployment "dry-run": a PATCH there is a 405.
        if not self.path.endswith("/{id}/"):
            return False
        siblings = [extra for extra in getattr(self.view, "get_extra_actions", list)() if not extra.detail]
        return any(self.method.lower() not in extra.mapping for extra in siblings)

    def _role_decides(self) -> bool:
        # Asked of the view's permissions: one that decides by role says so through `role_decides(view)`.
        return any(getattr(permission, "role_decides", lambda view: False)(self.view)
                   for permission in self.view.get_permissions())


class TypedFilterInspector(FilterInspector):
    """Types each django-filter query parameter as its form field validates it, not as a bare string."""

    def get_filter_parameters(self, filter_backend):
        if not hasattr(filter_backend, "get_filterset_class"):
            return NotHandled
        filterset_class = filter_backend.get_filterset_class(self.view, self.view.get_queryset())
        if filterset_class is None:
            return NotHandled
        return [self._parameter(name, field) for name, field in filterset_class.base_filters.items()]

    @staticmethod
    def _parameter(name: str, field: django_filters.Filter) -> openapi.Parameter:
        common = {"name": name, "in_": openapi.IN_QUERY, "required": field.extra.get("required", False),
                  "description": str(field.label or "")}
        choices = [str(value) for value, _ in field.extra.get("choices", ())]
        if isinstance(field, django_filters.MultipleChoiceFilter):
            return openapi.Parameter(type=openapi.TYPE_ARRAY, items=openapi.Items(type=openapi.TYPE_STRING, enum=choices),
                                     collection_format="multi", **common)
        if isinstance(field, django_filters.ChoiceFilter):
            return openapi.Parameter(type=openapi.TYPE_STRING, enum=choices, **common)
        if issubclass(field.field_class, forms.IntegerField):
            bounds = {name: field.extra[name] for name in ("min_value", "max_value") if name in field.extra}
            return openapi.Parameter(type=openapi.TYPE_INTEGER, minimum=bounds.get("min_value"),
                                     maximum=bounds.get("max_value"), **common)
        return openapi.Parameter(type=openapi.TYPE_STRING, **common)

