"""Auth endpoints: register, login, refresh, logout and the current user."""
from django.db.models import Prefetch
from django.utils.decorators import method_decorator
from drf_yasg.utils import swagger_auto_schema
from rest_framework import generics, permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from hypervisor_mlops.api.queries import StrictQueryParameters
from hypervisor_mlops.api.throttling import ClientAddressRateThrottle
from organizations.models import Membership

from .models import User
from .serializers import LogoutSerializer, MeSerializer, RegisterSerializer, TokenPairSerializer, UserSerializer


# No token needed (security=[]). The password is write-only, which Swagger 2.0 cannot say: the answer is
# documented as the public fields alone.
@method_decorator(name="post", decorator=swagger_auto_schema(security=[], responses={201: UserSerializer}))
class RegisterView(StrictQueryParameters, generics.CreateAPIView):
    """Create an account. Throttled per client address."""

    serializer_class = RegisterSerializer
    authentication_classes = ()
    permission_classes = (permissions.AllowAny,)
    throttle_classes = (ClientAddressRateThrottle,)


# simplejwt answers 200 with the token pair; left alone, the schema would say 201 with the request's fields.
@method_decorator(name="post", decorator=swagger_auto_schema(
    security=[], responses={200: TokenPairSerializer, 401: "Bad credentials"}))
class LoginView(StrictQueryParameters, TokenObtainPairView):
    """Exchange a username and password for an access and a refresh token. Throttled per client address."""

    throttle_classes = (ClientAddressRateThrottle,)


@method_decorator(name="post", decorator=swagger_auto_schema(
    security=[], responses={200: TokenPairSerializer, 401: "Invalid, expired or already used token"}))
class RefreshView(StrictQueryParameters, TokenRefreshView):
    """Exchange a refresh token for a new pair; the refresh token used stops working."""


class LogoutView(StrictQueryParameters, APIView):
    """Blacklist a refresh token so it can never be used again."""

    @swagger_auto_schema(request_body=LogoutSerializer, responses={204: "Logged out", 401: "Invalid token"})
    def post(self, request):
        serializer = LogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            token = RefreshToken(serializer.validated_data["refresh"])
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        if str(token.get(jwt_settings.USER_ID_CLAIM)) != str(request.user.pk):
            raise InvalidToken("This refresh token belongs to another user.")
        token.blacklist()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(StrictQueryParameters, generics.RetrieveAPIView):
    """The signed-in user and the organizations they belong to, with their role in each."""

    serializer_class = MeSerializer

    def get_object(self):
        memberships = Prefetch("memberships", queryset=Membership.objects.select_related("organization"))
        return User.objects.prefetch_related(memberships).get(pk=self.request.user.pk)
