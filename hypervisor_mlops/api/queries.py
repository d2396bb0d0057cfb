"""Strict query strings: an operation takes the query parameters it declares, each once, and nothing else.

As Stripe answers "Received unknown parameter", a parameter an operation does not declare is a 400 that names it
rather than being ignored: a misspelt filter (`?orgnization=2`) would otherwise answer every object, unfiltered.
What an operation declares is what /swagger.json documents for it: a list's filters and its `page`, and the
fields of the action's query serializer (`query_serializers`). A parameter that takes one value (all but a
multiple choice) given twice is a 400 as well, rather than the last one silently winning. Whole numbers are
written as digits with an optional minus: `1.0`, `+1`, `1e3` and a blank are not numbers here (Django and DRF would
take the first as 1 and ignore the last).
"""
import re

import django_filters
from django import forms
from django.core.paginator import Paginator
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.fields import empty
from rest_framework.pagination import PageNumberPagination

WHOLE_NUMBER = re.compile(r"-?[0-9]+")


class WholeNumberFormField(forms.IntegerField):
    """A filter's whole number: absent is no filter, but present it must be a number (`?organization=` is not)."""

    def to_python(self, value):
        if value is not None and not WHOLE_NUMBER.fullmatch(str(value)):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class QueryIntegerField(serializers.IntegerField):
    """A query serializer's whole number: absent takes the default, but a blank or `0.0` is a 400."""

    def get_value(self, dictionary):
        # DRF reads a blank form value as absent; in a query string it is a value, and not a number.
        return dictionary.get(self.field_name, empty)

    def to_internal_value(self, data):
        if not (isinstance(data, str) and WHOLE_NUMBER.fullmatch(data)):
            self.fail("invalid")
        return super().to_internal_value(data)


class PageQuerySerializer(serializers.Serializer):
    """The query of a paginated action: which page (the paginator answers 404 for one that does not exist)."""

    page = serializers.IntegerField(min_value=1, required=False,
                                    help_text="A page number within the paginated result set.")


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend, but a list asked for without any filter is not run through the filter form: a
    form built and validated to change nothing, on most list requests (a dashboard polling its clusters)."""

    def filter_queryset(self, request, queryset, view):
        filterset = self.get_filterset_class(view, queryset)
        if filterset is not None and request.query_params.keys().isdisjoint(filterset.base_filters):
            return queryset
        return super().filter_queryset(request, queryset, view)


class FirstPageCountingPaginator(Paginator):
    """Django's paginator, but the first page reads one row more than it shows instead of counting first: when
    that row is not there, the page is the whole list and its length is the count. Most lists (a team's
    clusters, its organizations, a deployment's events) fit one page, and then cost one query, not two."""

    def page(self, number):
        if int(number) != 1:
            return super().page(number)
        rows = list(self.object_list[: self.per_page + 1])
        if len(rows) <= self.per_page:
            self.count = len(rows)  # fills the cached_property: nothing else to count
        return self._get_page(rows[: self.per_page], 1, self)


class WholeNumberPagination(PageNumberPagination):
    """DRF's page numbers, but only numbers: `?page=`, `?page=last` or `?page=1.0` is no page (404), as `?page=x` is."""

    django_paginator_class = FirstPageCountingPaginator

    def get_page_number(self, request, paginator):
        number = request.query_params.get(self.page_query_param)
        if number is None:
            return 1
        if not WHOLE_NUMBER.fullmatch(number):
            raise NotFound(self.invalid_page_message.format(page_number=number, message="Not a page number"))
        return number


class StrictQueryParameters:
    """For every API view: a query parameter the operation does not declare, or one given twice, is a 400.

    Checked after authentication, permissions and throttling, so that an anonymous caller still learns 401 first,
    and only for a method the path takes (otherwise 405).
    """

    # The query serializer of each action beyond a list's filters and page, for the check and the schema alike.
    query_serializers: dict = {}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            return  # a method the path does not take: its 405 says more than its query
        declared = self.declared_query_parameters()
        unknown = sorted(set(request.query_params) - set(declared))
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            plural = "s" if len(unknown) > 1 else ""
            accepted = f"accepts {', '.join(sorted(declared))}" if declared else "takes no query parameters"
            raise ValidationError({"detail": f"Unknown query parameter{plural}: {names}. This operation {accepted}."})
        repeated = {name: [f"Give one value, not {len(values)}."] for name, values in request.query_params.lists()
                    if len(values) > 1 and not declared[name]}
        if repeated:
            raise ValidationError(repeated)

    def declared_query_parameters(self) -> dict[str, bool]:
        """Each query parameter this operation declares, and whether it may be given more than once."""
        action = getattr(self, "action", None)
        declared = {}
        if action == "list":
            filterset = getattr(self, "filterset_class", None)
            for name, field in (filterset.base_filters.items() if filterset else ()):
                declared[name] = isinstance(field, django_filters.MultipleChoiceFilter)
            if self.paginator is not None:
                declared[self.paginator.page_query_param] = False
        query_serializer = self.query_serializers.get(action)
        for name, field in (query_serializer().fields.items() if query_serializer else ()):
            declared[name] = isinstance(field, (serializers.ListField, serializers.MultipleChoiceField))
        return declared
