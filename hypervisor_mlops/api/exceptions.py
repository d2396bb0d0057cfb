"""API errors: the 409 Conflict exception, and JSON (never HTML) for errors raised outside DRF views."""
from django.http import JsonResponse
from rest_framework import status
from rest_framework.exceptions import APIException


class Conflict(APIException):
    """The request is valid but conflicts with the current state (an invalid transition, a last admin...)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class ServiceUnavailable(APIException):
    """A dependency the request needs (the cache, the broker) is down for the moment."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Service temporarily unavailable; try again in a moment."
    default_code = "service_unavailable"


def bad_request(request, exception=None):
    return JsonResponse({"detail": "Bad request."}, status=400)


def permission_denied(request, exception=None):
    return JsonResponse({"detail": "You do not have permission to perform this action."}, status=403)


def not_found(request, exception=None):
    return JsonResponse({"detail": "Not found."}, status=404)


def server_error(request):
    return JsonResponse({"detail": "Internal server error."}, status=500)
