package server

import (
	_ "embed"
	"net/http"
)

// openAPI is the API's OpenAPI 3.1 document. It is generated from the
// route table and the api types (SKILLBUILD_UPDATE_OPENAPI=1 go test
// ./server -run TestOpenAPI) and checked against both by the tests.
//
//go:embed openapi.json
var openAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(HeaderExitCode, "0")
	w.Write(openAPI) //nolint:errcheck // a client that went away
}
