"""knox's views as a project wires them.

  /api/auth/login/basic/   knox's LoginView with BasicAuthentication (what
                           knox's docs show first)
  /api/auth/login/recipe/  knox's documented username/password recipe: a
                           LoginView subclass with AllowAny, DRF's
                           AuthTokenSerializer and django.contrib.auth.login
  /api/auth/logout/        knox's LogoutView
  /api/auth/logoutall/     knox's LogoutAllView
  /api/whoami/             a GET view behind knox's TokenAuthentication and
                           IsAuthenticated
"""
from django.contrib.auth import login
from django.urls import path
from knox import views as knox_views
from knox.auth import TokenAuthentication
from rest_framework import permissions
from rest_framework.authentication import BasicAuthentication
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.response import Response


# knox's docs (docs/auth.md), verbatim: the class keeps the docs' name and
# has no docstring, so that OPTIONS describes it as knox's own LoginView
# ("Login", no description).
class LoginView(knox_views.LoginView):
    permission_classes = (permissions.AllowAny,)

    def post(self, request, format=None):
        serializer = AuthTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data['user']
        login(request, user)
        return super(LoginView, self).post(request, format=None)


@api_view(["GET"])
@authentication_classes([TokenAuthentication])
@permission_classes([permissions.IsAuthenticated])
def whoami(request):
    """The authenticated user, as the Caddy test site echoes it."""
    return Response({"id": request.user.id, "username": request.user.username})


urlpatterns = [
    path("api/auth/login/basic/", knox_views.LoginView.as_view(authentication_classes=(BasicAuthentication,))),
    path("api/auth/login/recipe/", LoginView.as_view()),
    path("api/auth/logout/", knox_views.LogoutView.as_view()),
    path("api/auth/logoutall/", knox_views.LogoutAllView.as_view()),
    path("api/whoami/", whoami),
]
