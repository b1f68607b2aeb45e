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

// knoxLoginOptions is SimpleMetadata's answer to OPTIONS on knox's
// LoginView (a view without a serializer has no "actions"), with the JSON
// renderer and DRF's default parsers.
var knoxLoginOptions = []byte(`{"name":"Login","description":"","renders":["application/json"],"parses":["application/json","application/x-www-form-urlencoded","multipart/form-data"]}`)

// WriteKnoxLoginOptions answers OPTIONS on knox's login views, as
// WriteLoginOptions does on obtain_auth_token's.
func WriteKnoxLoginOptions(w http.ResponseWriter, indent int) {
	writeOptions(w, indent, knoxLoginOptions)
}

// WriteLoginOptions answers OPTIONS on the login endpoint as DRF does:
// 200 with the view's metadata, indented when the client negotiated an
// indent (indent ≥ 0).
func WriteLoginOptions(w http.ResponseWriter, indent int) {
	writeOptions(w, indent, loginOptions)
}

func writeOptions(w http.ResponseWriter, indent int, body []byte) {
	if indent >= 0 {
		var out bytes.Buffer
		_ = json.Indent(&out, body, "", strings.Repeat(" ", indent))
		body = out.Bytes()
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}
