"""The auth-check endpoint that Caddy's forward_auth calls.

GET /auth/check/ authenticates the forwarded Authorization header with DRF's
TokenAuthentication, requires IsAuthenticated, and answers 200 with the
user's id and username as headers (copied by forward_auth's copy_headers).
A refused token gets DRF's own 401 JSON, which forward_auth passes back
unchanged. This is caddy-modules.md §2.4: how a Django site protects a
Caddy site today.
"""
from django.urls import path
from rest_framework.authentication import TokenAuthentication
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    permission_classes,
)
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response


@api_view(["GET"])
@authentication_classes([TokenAuthentication])
@permission_classes([IsAuthenticated])
def check(request):
    return Response(
        status=200,
        headers={
            "X-User-Id": str(request.user.id),
            "X-Username": request.user.get_username(),
        },
    )


urlpatterns = [
    path("auth/check/", check),
]
