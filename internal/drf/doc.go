// Package drf is what Django REST Framework and Django say on the wire,
// written as plain functions that know nothing of Caddy: the Authorization
// header as TokenAuthentication reads it, DRF's messages, the {"detail": …}
// bodies of its exception handler and JSONRenderer, content negotiation for
// a JSON-only view, and the login body as obtain_auth_token's parsers and
// AuthTokenSerializer read it.
package drf
