from django.urls import path
from rest_framework.authtoken.views import ObtainAuthToken, obtain_auth_token
from rest_framework.decorators import api_view
from rest_framework.permissions import BasePermission, IsAdminUser, IsAuthenticatedOrReadOnly
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView


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


class IsSuperuser(BasePermission):
    """require superuser: auth_user.is_superuser."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_superuser)


class InEditorsOrAdmins(BasePermission):
    """require group editors admins: a member of either group."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.groups.filter(name__in=["editors", "admins"]).exists())


class CanViewReport(BasePermission):
    """require perm reports.view_report: Django's user.has_perm."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.has_perm("reports.view_report"))


class Echo(APIView):
    """The authenticated user, on every method, as whoami."""

    def get(self, request):
        return Response({"id": request.user.id, "username": request.user.username})

    post = put = patch = delete = get


def echo(*classes):
    return Echo.as_view(permission_classes=list(classes))


urlpatterns = [
    path("whoami/", whoami),
    path("perm/admin/", echo(IsAdminUser)),
    path("perm/superuser/", echo(IsSuperuser)),
    path("perm/group/", echo(InEditorsOrAdmins)),
    path("perm/perm/", echo(CanViewReport)),
    path("perm/both/", echo(CanViewReport, IsAdminUser)),
    path("perm/readonly/", echo(IsAuthenticatedOrReadOnly)),
    path("api-token-auth/", obtain_auth_token),
    path("api-token-auth-throttled/", ThrottledObtainAuthToken.as_view()),
]
