"""The strict fields and serializers every app's serializers build on, and the page envelope."""
import copy

from django.db import models
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A JSON string only: DRF would turn the number 0 into "0", which the schema (type string) calls invalid.

    Its length is that of the string as sent: DRF would measure it after trimming the whitespace around it, and
    so take 201 characters where the schema says at most 200.
    """

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StrictEmailField(StrictCharField, serializers.EmailField):
    """An email address given as a JSON string."""


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only: DRF would also take 0, 1, "yes" and "off", which the schema (type boolean) calls
    invalid."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictSerializer(serializers.Serializer):
    """An object whose keys are all known: a misspelt setting is a 400, not silently its default."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    """Text fields of the model take JSON strings only, as the schema types them.

    Its fields are derived from the model once per class: DRF derives them again for every instance (every
    request, and every nested use), about a tenth of a short request's time, though they depend only on the class.
    Each instance gets its own copies, as DRF gives it copies of the declared fields.
    """

    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping, models.CharField: StrictCharField,
                                models.TextField: StrictCharField, models.EmailField: StrictEmailField}

    def get_fields(self):
        derived = type(self).__dict__.get("_derived_fields")
        if derived is None:
            derived = super().get_fields()
            type(self)._derived_fields = derived
        return copy.deepcopy(derived)


class PageSerializer(serializers.Serializer):
    """DRF's page envelope, for documenting paginated actions: drf-yasg pages only `list` responses itself."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
