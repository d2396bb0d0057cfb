"""Serializers for registration and the current user."""
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from rest_framework import serializers

from hypervisor_mlops.api.serializers import StrictCharField, StrictEmailField, StrictModelSerializer

from .models import User

DUPLICATE_EMAIL = "A user with that email already exists."
DUPLICATE_USERNAME = "A user with that username already exists."


class RegisterSerializer(StrictModelSerializer):
    password = StrictCharField(write_only=True, style={"input_type": "password"})
    email = StrictEmailField(max_length=User._meta.get_field("email").max_length)

    class Meta:
        model = User
        fields = ("id", "username", "email", "password")
        # A username has no spaces (its pattern says so): " ann" is refused, not trimmed into someone's "ann".
        extra_kwargs = {"username": {"trim_whitespace": False}}

    def validate_email(self, value: str) -> str:
        if User.objects.filter(email__iexact=value).exists():
            raise serializers.ValidationError(DUPLICATE_EMAIL)
        return value

    def validate(self, attrs: dict) -> dict:
        candidate = User(username=attrs["username"], email=attrs["email"])
        try:
            password_validation.validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from exc
        return attrs

    def create(self, validated_data: dict) -> User:
        try:
            with transaction.atomic():
                return User.objects.create_user(**validated_data)
        except IntegrityError as exc:
            # Two registrations raced past validation; the database constraint decided which one won.
            if User.objects.filter(username=validated_data["username"]).exists():
                raise serializers.ValidationError({"username": [DUPLICATE_USERNAME]}) from exc
            raise serializers.ValidationError({"email": [DUPLICATE_EMAIL]}) from exc


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "username", "email")


class MembershipSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(source="organization.id")
    name = serializers.CharField(source="organization.name")
    role = serializers.CharField()


class MeSerializer(UserSerializer):
    organizations = MembershipSummarySerializer(source="memberships", many=True, read_only=True)

    class Meta(UserSerializer.Meta):
        fields = (*UserSerializer.Meta.fields, "organizations")


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class TokenPairSerializer(serializers.Serializer):
    """What login and refresh answer; documentation only, simplejwt builds the response."""

    access = serializers.CharField()
    refresh = serializers.CharField()
