package drf

// DRF's and Django's messages, verbatim (rest_framework/authentication.py,
// exceptions.py, fields.py, authtoken/serializers.py, parsers.py,
// negotiation.py), and the few this module adds where DRF has no answer.

// Authentication (rest_framework/authentication.py, exceptions.py).
const (
	DetailNotProvided   = "Authentication credentials were not provided."
	DetailNoCredentials = "Invalid token header. No credentials provided."
	DetailSpaces        = "Invalid token header. Token string should not contain spaces."
	DetailInvalidChars  = "Invalid token header. Token string should not contain invalid characters."
	DetailInvalidToken  = "Invalid token."
	DetailInactive      = "User inactive or deleted."
	// DetailPermissionDenied is PermissionDenied's, the answer to an
	// authenticated user a permission class refuses (exceptions.py).
	DetailPermissionDenied = "You do not have permission to perform this action."
	// BasicAuthentication's messages (knox's LoginView).
	DetailBasicNoCredentials = "Invalid basic header. No credentials provided."
	DetailBasicSpaces        = "Invalid basic header. Credentials string should not contain spaces."
	DetailBasicBase64        = "Invalid basic header. Credentials not correctly base64 encoded."
	DetailBadBasicLogin      = "Invalid username/password."
	// DetailUnavailable is DRF's ServiceUnavailable, the answer when the
	// token store cannot answer; UnavailableRetryAfter is its Retry-After.
	DetailUnavailable     = "Service temporarily unavailable, try again later."
	UnavailableRetryAfter = "1"
)

// The refusals of the token check, with their bodies made once.
var (
	ErrNotProvided   = newError(DetailNotProvided)
	ErrNoCredentials = newError(DetailNoCredentials)
	ErrSpaces        = newError(DetailSpaces)
	ErrInvalidChars  = newError(DetailInvalidChars)
	ErrInvalidToken  = newError(DetailInvalidToken)
	ErrInactive      = newError(DetailInactive)
	// ErrPermissionDenied is written with 403 and no challenge.
	ErrPermissionDenied = newError(DetailPermissionDenied)
	// BasicAuthentication's refusals.
	ErrBasicNoCredentials = newError(DetailBasicNoCredentials)
	ErrBasicSpaces        = newError(DetailBasicSpaces)
	ErrBasicBase64        = newError(DetailBasicBase64)
	ErrBadBasicLogin      = newError(DetailBadBasicLogin)
	ErrUnavailable        = newError(DetailUnavailable)
)

// Serializer fields (rest_framework/fields.py) and AuthTokenSerializer.
const (
	MsgRequired  = "This field is required."
	MsgBlank     = "This field may not be blank."
	MsgNull      = "This field may not be null."
	MsgNotString = "Not a valid string."
	MsgNullChars = "Null characters are not allowed."
	MsgBadLogin  = "Unable to log in with provided credentials."
	MsgNoData    = "No data provided"
	// MsgTokenLimit is knox's LoginView refusal past TOKEN_LIMIT_PER_USER,
	// under the key "error".
	MsgTokenLimit = "Maximum amount of tokens allowed per user exceeded."
)

// Negotiation and request reading (rest_framework/exceptions.py,
// parsers.py); the body deadline, read failure and size limit are this
// module's own, since DRF leaves them to the server in front of it.
const (
	MsgNotAcceptable = "Could not satisfy the request Accept header."
	MsgBodyTimeout   = "The request body was not received in time."
	MsgBodyUnread    = "Could not read the request body."
)

// MethodNotAllowed is DRF's MethodNotAllowed detail.
func MethodNotAllowed(method string) string {
	return `Method "` + method + `" not allowed.`
}

// BodyTooLarge is the detail of a body over the limit of max bytes.
func BodyTooLarge(max string) string {
	return "Request body is larger than " + max + " bytes."
}

// unsupportedMediaType is DRF's UnsupportedMediaType detail.
func unsupportedMediaType(contentType string) string {
	return `Unsupported media type "` + contentType + `" in request.`
}
