from django.urls import path
from rest_framework.decorators import api_view
from rest_framework.response import Response


@api_view(["GET"])
def whoami(request):
    """The authenticated user, as the Caddy test site echoes it."""
    return Response({"id": request.user.id, "username": request.user.username})


urlpatterns = [
    path("whoami/", whoami),
]
