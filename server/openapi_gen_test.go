package server

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/require"
)

// apiDescription introduces the document.
const apiDescription = "skillbuild's local HTTP/JSON API (`skillbuild serve`): the commands of the CLI as endpoints " +
	"that answer with the documents of their --json output. Every answer carries the CLI's exit code of the " +
	"operation in the X-Skillbuild-Exit-Code header; the status follows from it (0: 200, 2: 400, 3: 422, 4: 404, " +
	"75: 503, others 500; 201 for a session opened, 429 (exit code 75) when the server has its maximum of sessions open; " +
	"401 for a missing or wrong bearer token, 413 for a body over the server's limit). " +
	"A unix socket needs no token; TCP (loopback only) needs `Authorization: Bearer TOKEN`. " +
	"A session belongs to whoever opened it: the peer's uid over a unix socket, the bearer token over TCP."

// okStatus is the status key of the answer of r that worked.
func okStatus(r route) string {
	if r.ok != 0 {
		return strconv.Itoa(r.ok)
	}
	return "200"
}

// queryParams are the query parameters of the routes that take some.
var queryParams = map[string][]map[string]any{
	"GET /v1/skills": {{"name": "unpacked", "in": "query", "required": false, "description": "also measure each image's unpacked (snapshot) size",
		"schema": map[string]any{"type": "boolean"}}},
}

// generateOpenAPI makes the OpenAPI 3.1 document of s: its routes, and
// schemas of their request and answer types.
func generateOpenAPI(t *testing.T, s *Server) map[string]any {
	t.Helper()
	g := &schemaGen{t: t, schemas: map[string]any{}, names: map[reflect.Type]string{}}
	exitHeader := map[string]any{"X-Skillbuild-Exit-Code": map[string]any{"$ref": "#/components/headers/ExitCode"}}
	paths := map[string]any{}
	for _, r := range s.routes {
		method, path, _ := strings.Cut(r.pattern, " ")
		op := map[string]any{
			"operationId": strings.ToLower(method) + strings.NewReplacer("/", "_", ".", "_").Replace(path),
			"summary":     r.summary,
		}
		if ps := queryParams[r.pattern]; ps != nil {
			op["parameters"] = ps
		}
		if strings.Contains(path, "{id}") {
			op["parameters"] = []map[string]any{{"name": "id", "in": "path", "required": true,
				"description": "the session's id (session_id)", "schema": map[string]any{"type": "string"}}}
		}
		if r.request != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": g.schema(r.request, false, false)}}}
		}
		responses := map[string]any{}
		switch {
		case r.document != nil:
			ok := map[string]any{"application/json": map[string]any{"schema": g.schema(bodyType(r.document), true, false)}}
			if r.pattern == "POST /v1/install" {
				ok["application/x-ndjson"] = map[string]any{"schema": g.schema(reflect.TypeFor[StreamEvent](), true, false)}
			}
			responses[okStatus(r)] = map[string]any{"description": "the operation worked", "headers": exitHeader, "content": ok}
			responses["default"] = map[string]any{
				"description": "the operation failed: its document when it has one (a refused install, a run that did not happen), else an error document",
				"headers":     exitHeader,
				"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"anyOf": []any{
					g.schema(bodyType(r.document), true, false), g.schema(reflect.TypeFor[api.ErrorDocument](), true, false)}}}}}
		case strings.HasSuffix(path, ".json"):
			responses["200"] = map[string]any{"description": "the document", "content": map[string]any{
				"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}}
		default:
			responses["200"] = map[string]any{"description": "the samples", "content": map[string]any{
				"text/plain": map[string]any{"schema": map[string]any{"type": "string"}}}}
		}
		op["responses"] = responses
		item, _ := paths[path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[path] = item
		}
		item[strings.ToLower(method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "skillbuild API", "version": "1", "description": apiDescription},
		"paths":   paths,
		// The bearer token is needed on TCP only.
		"security": []any{map[string]any{}, map[string]any{"bearer": []any{}}},
		"components": map[string]any{
			"schemas":         g.schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
			"headers": map[string]any{"ExitCode": map[string]any{
				"description": "the CLI's exit code of the operation: 0 ok, 1 failed, 2 bad input, 3 refused (vulnerable), 4 not found, 75 try again",
				"schema":      map[string]any{"type": "integer"}}},
		},
	}
}

// schemaGen writes JSON schemas of Go types, one component per named
// struct.
type schemaGen struct {
	t       *testing.T
	schemas map[string]any
	names   map[reflect.Type]string
	answer  map[reflect.Type]bool
}

// name is the component name of struct type t: its Go name, qualified by
// its package when another package's type has it.
func (g *schemaGen) name(t reflect.Type) string {
	if n, ok := g.names[t]; ok {
		return n
	}
	n := t.Name()
	for other, on := range g.names {
		if on == n && other != t {
			pkg := t.PkgPath()[strings.LastIndex(t.PkgPath(), "/")+1:]
			n = strings.ToUpper(pkg[:1]) + pkg[1:] + n
		}
	}
	g.names[t] = n
	return n
}

// schema is the schema of values of t as encoding/json writes them;
// answer schemas list the fields always written as required, request
// schemas refuse unknown fields (as the server does).
func (g *schemaGen) schema(t reflect.Type, answer, nullable bool) map[string]any {
	if g.answer == nil {
		g.answer = map[reflect.Type]bool{}
	}
	typ := func(name string) any {
		if nullable {
			return []any{name, "null"}
		}
		return name
	}
	switch {
	case t.Kind() == reflect.Pointer:
		return map[string]any{"anyOf": []any{g.schema(t.Elem(), answer, false), map[string]any{"type": "null"}}}
	case t == typeTime:
		return map[string]any{"type": typ("string"), "format": "date-time"}
	case t == typeRawMessage || t.Kind() == reflect.Interface:
		return map[string]any{"description": "any JSON value"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": typ("string")}
	case reflect.Bool:
		return map[string]any{"type": typ("boolean")}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": typ("integer")}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": typ("number")}
	case reflect.Slice:
		return map[string]any{"type": typ("array"), "items": g.schema(t.Elem(), answer, false)}
	case reflect.Map:
		return map[string]any{"type": typ("object"), "additionalProperties": g.schema(t.Elem(), answer, false)}
	case reflect.Struct:
		name := g.name(t)
		ref := map[string]any{"$ref": "#/components/schemas/" + name}
		if seen, ok := g.answer[t]; ok {
			require.Equal(g.t, seen, answer, "%s is both a request's and an answer's part: their schemas differ", t)
			return ref
		}
		g.answer[t] = answer
		props := map[string]any{}
		required := []any{}
		for _, f := range jsonFields(t) {
			kind := f.typ.Kind()
			props[f.name] = g.schema(f.typ, answer, !f.omitEmpty && (kind == reflect.Slice || kind == reflect.Map) && f.typ != typeRawMessage)
			if !f.omitEmpty {
				required = append(required, f.name)
			}
		}
		s := map[string]any{"type": "object", "properties": props}
		if answer {
			s["required"] = required
		} else {
			s["additionalProperties"] = false
		}
		g.schemas[name] = s
		return ref
	}
	g.t.Fatalf("no JSON schema for %s", t)
	return nil
}
