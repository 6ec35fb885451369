"""DRF authentication with the bearer tokens of orders.tokens.

The user is loaded from the database on every request (the `SELECT auth_user` the trace of each
API call shows, under `<View>.perform_authentication`), so a deactivated user loses access at
once rather than when the token expires.
"""

from django.contrib.auth import get_user_model
from rest_framework import authentication, exceptions

from .tokens import InvalidToken, verify_token


class JWTAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None  # not ours: the next authentication class may accept the request
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        try:
            claims = verify_token(header[1].decode("ascii"))
        except (InvalidToken, UnicodeDecodeError) as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        User = get_user_model()
        try:
            user = User.objects.get(pk=claims["sub"], is_active=True)
        except (User.DoesNotExist, ValueError):
            raise exceptions.AuthenticationFailed("No such user.") from None
        return user, claims

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'
