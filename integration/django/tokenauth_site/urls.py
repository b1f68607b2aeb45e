from django.urls import path
from rest_framework.authtoken.views import ObtainAuthToken, obtain_auth_token
from rest_framework.decorators import api_view
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle


@api_view(["GET"])
def whoami(request):
    """The authenticated user, as the Caddy test site echoes it."""
    return Response({"id": request.user.id, "username": request.user.username})


class LoginRateThrottle(AnonRateThrottle):
    """DRF's anonymous throttle at the rate the Caddy tests configure."""

    rate = "3/min"


class ThrottledObtainAuthToken(ObtainAuthToken):
    """obtain_auth_token throttled, as a project would subclass it."""

    throttle_classes = (LoginRateThrottle,)


urlpatterns = [
    path("whoami/", whoami),
    path("api-token-auth/", obtain_auth_token),
    path("api-token-auth-throttled/", ThrottledObtainAuthToken.as_view()),
]
