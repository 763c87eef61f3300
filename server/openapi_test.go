package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The OpenAPI document (openapi.json) is generated from the route table
// and the api types by generateOpenAPI; regenerate it with
// SKILLBUILD_UPDATE_OPENAPI=1 go test ./server -run TestOpenAPIUpToDate.
// TestOpenAPIMatchesServer then checks the committed document against the
// server on its own terms: every route the mux serves is in it and every
// path in it is served, and every schema matches its Go type field by
// field (JSON names, types, nullability, required fields of answers).

// TestOpenAPIUpToDate: the committed document is what the generator makes
// of the server as it is.
func TestOpenAPIUpToDate(t *testing.T) {
	t.Parallel()
	s, err := New(&fakeOps{})
	require.NoError(t, err)
	b, err := json.MarshalIndent(generateOpenAPI(t, s), "", "  ")
	require.NoError(t, err)
	b = append(b, '\n')
	if os.Getenv("SKILLBUILD_UPDATE_OPENAPI") != "" {
		require.NoError(t, os.WriteFile("openapi.json", b, 0o644))
	}
	assert.Equal(t, string(b), string(openAPI), "openapi.json is stale: SKILLBUILD_UPDATE_OPENAPI=1 go test ./server -run TestOpenAPIUpToDate")
}

// TestOpenAPIMatchesServer checks the document against the mux and the
// Go types, without the generator.
func TestOpenAPIMatchesServer(t *testing.T) {
	t.Parallel()
	s, err := New(&fakeOps{})
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(openAPI, &doc))
	assert.Equal(t, "3.1.0", doc["openapi"])
	paths := doc["paths"].(map[string]any)

	// Every operation of the document is routed by the mux to the pattern
	// of the same method and path.
	documented := map[string]bool{}
	for path, item := range paths {
		for method := range item.(map[string]any) {
			pattern := strings.ToUpper(method) + " " + path
			documented[pattern] = true
			_, got := s.mux.Handler(httptest.NewRequest(strings.ToUpper(method), path, nil))
			assert.Equal(t, pattern, got, "the document's %s is not what the mux serves", pattern)
		}
	}
	// Every route the server registers is documented, with its types.
	c := &schemaChecker{t: t, doc: doc}
	for _, r := range s.routes {
		require.True(t, documented[r.pattern], "%s is served but not in openapi.json", r.pattern)
		method, path, _ := strings.Cut(r.pattern, " ")
		operation := paths[path].(map[string]any)[strings.ToLower(method)].(map[string]any)
		if r.request != nil {
			body := dig(operation, "requestBody", "content", "application/json", "schema")
			require.NotNil(t, body, "%s documents no JSON request body", r.pattern)
			c.check(body, r.request, false, r.pattern+" request")
		} else {
			assert.Nil(t, operation["requestBody"], "%s takes no body", r.pattern)
		}
		if r.document == nil {
			continue
		}
		ok := dig(operation, "responses", okStatus(r), "content", "application/json", "schema")
		require.NotNil(t, ok, "%s documents no JSON answer", r.pattern)
		c.check(ok, bodyType(r.document), true, r.pattern+" answer")
		// A failure answers with the operation's document or an error
		// document.
		failed := dig(operation, "responses", "default", "content", "application/json", "schema")
		require.NotNil(t, failed, "%s documents no failure answer", r.pattern)
		anyOf, _ := failed.(map[string]any)["anyOf"].([]any)
		require.Len(t, anyOf, 2, "%s failure: the document or an error document", r.pattern)
		c.check(anyOf[0], bodyType(r.document), true, r.pattern+" failure")
		c.check(anyOf[1], reflect.TypeFor[api.ErrorDocument](), true, r.pattern+" failure")
	}
	assert.Len(t, documented, len(s.routes), "one operation per route")
	stream := dig(paths, "/v1/install", "post", "responses", "200", "content", "application/x-ndjson", "schema")
	require.NotNil(t, stream, "the install progress stream is documented")
	c.check(stream, reflect.TypeFor[StreamEvent](), true, "install stream")
}

// TestOpenAPIServed: the server answers with the committed document.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, &fakeOps{})
	resp, err := ts.Client().Get(ts.URL + "/v1/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.True(t, bytes.Equal(openAPI, b))
}

// TestOpenAPICheckerFails: the checker notices a document that drifted
// from its type (a renamed, a missing and a mistyped field).
func TestOpenAPICheckerFails(t *testing.T) {
	t.Parallel()
	type doc struct {
		Name  string   `json:"name"`
		Count int      `json:"count,omitempty"`
		Tags  []string `json:"tags"`
	}
	for name, schema := range map[string]string{
		"renamed":  `{"type": "object", "properties": {"nom": {"type": "string"}, "count": {"type": "integer"}, "tags": {"type": ["array", "null"], "items": {"type": "string"}}}, "required": ["nom", "tags"]}`,
		"missing":  `{"type": "object", "properties": {"name": {"type": "string"}, "tags": {"type": ["array", "null"], "items": {"type": "string"}}}, "required": ["name", "tags"]}`,
		"mistyped": `{"type": "object", "properties": {"name": {"type": "string"}, "count": {"type": "string"}, "tags": {"type": ["array", "null"], "items": {"type": "string"}}}, "required": ["name", "tags"]}`,
		"required": `{"type": "object", "properties": {"name": {"type": "string"}, "count": {"type": "integer"}, "tags": {"type": ["array", "null"], "items": {"type": "string"}}}, "required": ["name", "count", "tags"]}`,
		"nullable": `{"type": "object", "properties": {"name": {"type": "string"}, "count": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["name", "tags"]}`,
	} {
		var node any
		require.NoError(t, json.Unmarshal([]byte(schema), &node))
		rec := &recorder{}
		(&schemaChecker{t: rec, doc: map[string]any{}}).check(node, reflect.TypeFor[doc](), true, name)
		assert.True(t, rec.failed, "%s: the checker passed a schema that does not match", name)
	}
	var good any
	require.NoError(t, json.Unmarshal([]byte(`{"type": "object", "properties": {"name": {"type": "string"}, "count": {"type": "integer"}, "tags": {"type": ["array", "null"], "items": {"type": "string"}}}, "required": ["name", "tags"]}`), &good))
	rec := &recorder{}
	(&schemaChecker{t: rec, doc: map[string]any{}}).check(good, reflect.TypeFor[doc](), true, "good")
	assert.False(t, rec.failed, "%v", rec.msgs)
}

// recorder is an assert.TestingT that remembers failures.
type recorder struct {
	failed bool
	msgs   []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

// bodyType is the type of a route's document as it is sent: the server
// answers with the value a pointer points at (never null).
func bodyType(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		return t.Elem()
	}
	return t
}

// dig walks nested objects by key.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

var (
	typeTime       = reflect.TypeFor[time.Time]()
	typeRawMessage = reflect.TypeFor[json.RawMessage]()
)

// jsonField is a struct field as encoding/json writes it.
type jsonField struct {
	name      string
	omitEmpty bool
	typ       reflect.Type
}

// jsonFields lists the fields encoding/json writes of struct type t,
// embedded structs' flattened in.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		omit := slices.Contains(strings.Split(opts, ","), "omitempty") || slices.Contains(strings.Split(opts, ","), "omitzero")
		out = append(out, jsonField{name: name, omitEmpty: omit, typ: f.Type})
	}
	return out
}

// schemaChecker checks schemas of the document against Go types.
type schemaChecker struct {
	t   assert.TestingT
	doc map[string]any
}

// resolve follows a $ref into the document's components.
func (c *schemaChecker) resolve(node any, where string) map[string]any {
	m, ok := node.(map[string]any)
	if !ok {
		c.t.Errorf("%s: schema is not an object: %v", where, node)
		return nil
	}
	if ref, ok := m["$ref"].(string); ok {
		name, found := strings.CutPrefix(ref, "#/components/schemas/")
		target, _ := dig(c.doc, "components", "schemas", name).(map[string]any)
		if !found || target == nil {
			c.t.Errorf("%s: $ref %s names no schema", where, ref)
			return nil
		}
		return target
	}
	return m
}

// types is a schema's "type" as a set.
func types(m map[string]any) []string {
	switch v := m["type"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, s := range v {
			out = append(out, fmt.Sprint(s))
		}
		sort.Strings(out)
		return out
	}
	return nil
}

// check checks that node describes values of Go type t as encoding/json
// writes them; answer says whether it is (part of) an answer, whose
// schemas list the fields always present as required.
func (c *schemaChecker) check(node any, t reflect.Type, answer bool, where string) {
	c.checkNullable(node, t, answer, false, where)
}

func (c *schemaChecker) checkNullable(node any, t reflect.Type, answer, nullable bool, where string) {
	m := c.resolve(node, where)
	if m == nil {
		return
	}
	if t.Kind() == reflect.Pointer {
		anyOf, _ := m["anyOf"].([]any)
		if len(anyOf) != 2 || !reflect.DeepEqual(anyOf[1], map[string]any{"type": "null"}) {
			c.t.Errorf("%s: a pointer (%s) is anyOf [its element, {type: null}], got %v", where, t, m)
			return
		}
		c.checkNullable(anyOf[0], t.Elem(), answer, false, where)
		return
	}
	want := func(ty string) {
		wantTypes := []string{ty}
		if nullable {
			wantTypes = []string{ty, "null"}
			sort.Strings(wantTypes)
		}
		if got := types(m); !slices.Equal(got, wantTypes) {
			c.t.Errorf("%s: %s is type %v, the document says %v", where, t, wantTypes, got)
		}
	}
	switch {
	case t == typeTime:
		want("string")
		if m["format"] != "date-time" {
			c.t.Errorf("%s: a time is a date-time string, got %v", where, m)
		}
		return
	case t == typeRawMessage || t.Kind() == reflect.Interface:
		if _, has := m["type"]; has {
			c.t.Errorf("%s: %s is any JSON value (no type), got %v", where, t, m)
		}
		return
	}
	switch t.Kind() {
	case reflect.String:
		want("string")
	case reflect.Bool:
		want("boolean")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want("integer")
	case reflect.Float32, reflect.Float64:
		want("number")
	case reflect.Slice:
		want("array")
		if items, ok := m["items"]; ok {
			c.check(items, t.Elem(), answer, where+"[]")
		} else {
			c.t.Errorf("%s: an array without items", where)
		}
	case reflect.Map:
		want("object")
		if ap, ok := m["additionalProperties"]; ok {
			c.check(ap, t.Elem(), answer, where+"{}")
		} else {
			c.t.Errorf("%s: a map without additionalProperties", where)
		}
	case reflect.Struct:
		want("object")
		props, _ := m["properties"].(map[string]any)
		var names, required []string
		for _, f := range jsonFields(t) {
			names = append(names, f.name)
			if !f.omitEmpty {
				required = append(required, f.name)
			}
			p, ok := props[f.name]
			if !ok {
				c.t.Errorf("%s: field %q of %s is not in the document", where, f.name, t)
				continue
			}
			// encoding/json writes a nil slice or map as null unless the
			// field is omitted when empty.
			kind := f.typ.Kind()
			c.checkNullable(p, f.typ, answer, !f.omitEmpty && (kind == reflect.Slice || kind == reflect.Map) && f.typ != typeRawMessage, where+"."+f.name)
		}
		for name := range props {
			if !slices.Contains(names, name) {
				c.t.Errorf("%s: the document's property %q is no field of %s", where, name, t)
			}
		}
		var gotRequired []string
		listed, _ := m["required"].([]any)
		for _, r := range listed {
			gotRequired = append(gotRequired, fmt.Sprint(r))
		}
		if !answer {
			required = nil
		}
		sort.Strings(required)
		sort.Strings(gotRequired)
		if !slices.Equal(required, gotRequired) {
			c.t.Errorf("%s: required fields of %s are %v, the document says %v", where, t, required, gotRequired)
		}
	default:
		c.t.Errorf("%s: no JSON schema for %s", where, t)
	}
}
