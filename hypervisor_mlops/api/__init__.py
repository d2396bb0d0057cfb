"""The API base every app builds on: strict fields and serializers, queries and pages, throttles, errors,
routers and the OpenAPI generator."""
