package drf

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// LoginAllow is the Allow header of obtain_auth_token's view.
const LoginAllow = "POST, OPTIONS"

// loginOptions is DRF's SimpleMetadata answer to OPTIONS on
// obtain_auth_token, compact.
var loginOptions = []byte(`{"name":"Obtain Auth Token","description":"","renders":["application/json"],"parses":["application/x-www-form-urlencoded","multipart/form-data","application/json"],"actions":{"POST":{"username":{"type":"string","required":true,"read_only":false,"label":"Username"},"password":{"type":"string","required":true,"read_only":false,"label":"Password"},"token":{"type":"string","required":false,"read_only":true,"label":"Token"}}}}`)

// WriteViewOptions answers OPTIONS as DRF's SimpleMetadata does for a
// view without a serializer (no "actions"), such as knox's: 200 with the
// view's name and description, the JSON renderer and DRF's default
// parsers, indented when the client negotiated an indent (indent ≥ 0).
func WriteViewOptions(w http.ResponseWriter, indent int, name, description string) {
	WriteJSON(w, http.StatusOK, indent,
		Member{"name", name}, Member{"description", description},
		Member{"renders", []string{"application/json"}},
		Member{"parses", []string{"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}})
}

// knox's views as SimpleMetadata names and describes them (the view's
// class name and docstring).
const (
	KnoxLoginName         = "Login"
	KnoxLogoutName        = "Logout"
	KnoxLogoutAllName     = "Logout All"
	KnoxLogoutAllDocument = "Log the user out of all sessions\nI.E. deletes all auth tokens for the user"
)

// WriteLoginOptions answers OPTIONS on the login endpoint as DRF does:
// 200 with the view's metadata, indented when the client negotiated an
// indent (indent ≥ 0).
func WriteLoginOptions(w http.ResponseWriter, indent int) {
	body := loginOptions
	if indent >= 0 {
		var out bytes.Buffer
		_ = json.Indent(&out, loginOptions, "", strings.Repeat(" ", indent))
		body = out.Bytes()
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}
