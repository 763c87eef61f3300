package pydist

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ParseJSON reads the links of a PEP 691 JSON project page as pip 23.0
// does (Link.from_json): each file's url resolved against pageURL, its
// requires-python, yanked (true: yanked without reason; false or "": not
// yanked), dist-info-metadata and hashes in their order. A value of
// another type than pip expects (pip 23.0 fails on a dist-info-metadata
// object, for one) is an ErrUnsupported.
func ParseJSON(page []byte, pageURL string) ([]Link, error) {
	if len(page) > MaxPage {
		return nil, fmt.Errorf("project page %s is larger than %d bytes: %w", pageURL, MaxPage, ErrUnsupported)
	}
	if err := checkURLText(pageURL); err != nil {
		return nil, err
	}
	var doc struct {
		Files []map[string]json.RawMessage `json:"files"`
	}
	if err := json.Unmarshal(page, &doc); err != nil {
		return nil, fmt.Errorf("project page %s: %v: %w", pageURL, err, ErrUnsupported)
	}
	var links []Link
	for _, f := range doc.Files {
		raw, ok := f["url"]
		if !ok || string(raw) == "null" {
			continue
		}
		var href string
		if err := json.Unmarshal(raw, &href); err != nil {
			return nil, fmt.Errorf("project page %s: a file's url is not a string: %w", pageURL, ErrUnsupported)
		}
		hashes, err := orderedHashes(f["hashes"])
		if err != nil {
			return nil, fmt.Errorf("project page %s: %v: %w", pageURL, err, ErrUnsupported)
		}
		if href == "" {
			// urljoin(page, "") is the page itself: not a file.
			href = pageURL
		}
		u, err := cleanLink(pageURL, href)
		if err != nil {
			return nil, err
		}
		l := newLink(u, hashes)
		if l.RequiresPython, err = optString(f["requires-python"]); err != nil {
			return nil, fmt.Errorf("project page %s: requires-python: %v: %w", pageURL, err, ErrUnsupported)
		}
		if l.RequiresPython != nil && *l.RequiresPython == "" {
			l.RequiresPython = nil
		}
		if l.DistInfoMetadata, err = optString(f["dist-info-metadata"]); err != nil {
			return nil, fmt.Errorf("project page %s: dist-info-metadata: %v: %w", pageURL, err, ErrUnsupported)
		}
		if y := f["yanked"]; y != nil {
			var reason string
			var b bool
			switch {
			case string(y) == "null":
			case json.Unmarshal(y, &b) == nil:
				if b {
					l.Yanked = new(string)
				}
			case json.Unmarshal(y, &reason) == nil:
				if reason != "" {
					l.Yanked = &reason
				}
			default:
				return nil, fmt.Errorf("project page %s: yanked is neither a string nor a boolean: %w", pageURL, ErrUnsupported)
			}
		}
		links = append(links, l)
	}
	return links, nil
}

// optString reads a JSON string or null.
func optString(raw json.RawMessage) (*string, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("not a string")
	}
	return &s, nil
}

// orderedHashes reads a JSON object of hash name to hex digest, keeping
// the order of its keys (a later duplicate key replaces the value in
// place, as Python's json does).
func orderedHashes(raw json.RawMessage) ([]Hash, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("hashes is not an object")
	}
	var out []Hash
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v string
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("hash %v is not a string", k)
		}
		name := k.(string)
		replaced := false
		for i := range out {
			if out[i].Name == name {
				out[i].Value, replaced = v, true
			}
		}
		if !replaced {
			out = append(out, Hash{Name: name, Value: v})
		}
	}
	return out, nil
}
