package pydist

import (
	"archive/zip"
	"bytes"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// The fuzz targets' seed corpora are in testdata/fuzz/<target>/ (go test
// runs them as regression cases); `go test -fuzz FuzzParseHTML ./pydist`
// explores from there.

// FuzzParseHTML: no input panics the reader; a page it accepts has only
// http(s) links without blanks, and exactly the anchors with a non-empty
// href that an HTML5 tokenizer finds.
func FuzzParseHTML(f *testing.F) {
	f.Add([]byte(`<a href="../../files/foo-1.0-py3-none-any.whl#sha256=ab" data-requires-python="&gt;=3.8">foo</a>`), "http://127.0.0.1:8080/simple/foo/")
	f.Fuzz(func(t *testing.T, page []byte, pageURL string) {
		links, err := ParseHTML(page, pageURL)
		if err != nil {
			return
		}
		for _, l := range links {
			if !strings.HasPrefix(l.URL, "http://") && !strings.HasPrefix(l.URL, "https://") {
				t.Fatalf("link %q is not http(s)", l.URL)
			}
			if strings.ContainsAny(l.URL, " \t\r\n") {
				t.Fatalf("link %q has blanks", l.URL)
			}
			_, _, _ = l.MetadataURL()
			_ = l.Filename() + l.Ext() + l.WithoutFragment()
		}
		if n := html5Anchors(page); n != len(links) {
			t.Fatalf("read %d links, an HTML5 tokenizer finds %d anchors with an href in %q", len(links), n, page)
		}
	})
}

// html5Anchors counts the <a> start tags with a non-empty href (the last
// one, as pip keeps) that golang.org/x/net/html's tokenizer finds.
func html5Anchors(page []byte) int {
	z := html.NewTokenizer(bytes.NewReader(page))
	n := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			return n
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			if tok.Data != "a" {
				continue
			}
			href := ""
			for _, a := range tok.Attr {
				if a.Key == "href" {
					href = a.Val
				}
			}
			if href != "" {
				n++
			}
		}
	}
}

// FuzzParseJSON: no input panics the reader; accepted links are http(s).
func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(`{"files": [{"url": "../x-1.0-py3-none-any.whl", "hashes": {"sha256": "ab"}, "yanked": "bad", "requires-python": ">=3"}]}`), "http://127.0.0.1:8080/simple/x/")
	f.Fuzz(func(t *testing.T, page []byte, pageURL string) {
		links, err := ParseJSON(page, pageURL)
		if err != nil {
			return
		}
		for _, l := range links {
			if !strings.HasPrefix(l.URL, "http://") && !strings.HasPrefix(l.URL, "https://") {
				t.Fatalf("link %q is not http(s)", l.URL)
			}
			_ = l.Filename() + l.Ext() + l.WithoutFragment()
		}
	})
}

// FuzzParseMetadata: no input panics the parser, and fields written back
// as "Name: value" lines read back the same.
func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte("Metadata-Version: 2.1\nName: foo\nVersion: 1.0\nRequires-Dist: bar>=1; extra == 'x'\n  continued\n\nbody"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMetadata(b)
		if err != nil {
			return
		}
		var w strings.Builder
		for _, fld := range m.fields {
			if strings.HasPrefix(fld[1], " ") || strings.HasPrefix(fld[1], "\t") {
				return // the parser strips those blanks: not a round trip
			}
			w.WriteString(fld[0] + ": " + fld[1] + "\n")
		}
		w.WriteString("\n")
		m2, err := ParseMetadata([]byte(w.String()))
		if err != nil {
			t.Fatalf("re-reading %q: %v", w.String(), err)
		}
		if len(m2.fields) != len(m.fields) {
			t.Fatalf("%d fields, re-read %d", len(m.fields), len(m2.fields))
		}
		for i := range m.fields {
			if m.fields[i] != m2.fields[i] {
				t.Fatalf("field %q, re-read %q", m.fields[i], m2.fields[i])
			}
		}
	})
}

// FuzzWheelMetadata: no archive panics the wheel reader.
func FuzzWheelMetadata(f *testing.F) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, content := range map[string]string{
		"foo/__init__.py":            "",
		"foo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n",
		"foo-1.0.dist-info/WHEEL":    "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
		"foo-1.0.dist-info/RECORD":   "",
	} {
		w, _ := zw.Create(name)
		w.Write([]byte(content)) //nolint:errcheck
	}
	zw.Close()
	f.Add(buf.Bytes(), "foo")
	f.Fuzz(func(t *testing.T, b []byte, name string) {
		md, err := WheelMetadata(bytes.NewReader(b), int64(len(b)), name)
		if err == nil && len(md) > MaxMetadata {
			t.Fatalf("read %d bytes of metadata", len(md))
		}
	})
}

// FuzzParseWheelName: no name panics the parser; a wheel has tags.
func FuzzParseWheelName(f *testing.F) {
	f.Add("foo-1.0-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
	f.Fuzz(func(t *testing.T, name string) {
		w, err := ParseWheelName(name)
		if err == nil && len(w.Tags) == 0 {
			t.Fatalf("%q: no tags", name)
		}
		if err == nil {
			w.BuildTag()
		}
	})
}
