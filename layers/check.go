package layers

import (
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/skillbuild/skillbuild/lock"
)

// maxProblems bounds how many problems a failed layer check names.
const maxProblems = 10

// Error is a layer check's refusal: what is wrong, the problems it found
// (at most maxProblems of them, "and N more" after), and what to do.
type Error struct {
	Reason string
	Hint   string
}

func (e *Error) Error() string {
	if e.Hint == "" {
		return e.Reason
	}
	return e.Reason + "; " + e.Hint
}

// Entry is one line of a layer list: type ("f", "d", "l", "o") and
// path in the image.
type Entry struct{ Type, Path string }

// ParseList reads a layer list (List's and listlayers.py's format: one
// JSON array [type, path] per line).
func ParseList(b []byte) ([]Entry, error) {
	var out []Entry
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		var e []string
		if err := json.Unmarshal([]byte(line), &e); err != nil || len(e) != 2 {
			return nil, fmt.Errorf("bad layer list line %q", line)
		}
		out = append(out, Entry{Type: e[0], Path: e[1]})
	}
	return out, nil
}

// venvOwner is the owner, in checkLayerContents, of the venv layer's
// entries.
const venvOwner = -1

// checkLayerContents checks the layer lists (lists[i] is layer i's, holding
// locks[i]) against each other and against the venv layer's list venv
// (the layer below them all) and returns an *Error naming at most
// maxProblems problems, or nil. A distribution layer may share
// directories with the venv and the other layers, and nothing else.
func Check(venv []byte, locks []lock.Lock, lists [][]byte) error {
	var escaped, mismatched, overVenv, conflicts []string
	type owner struct {
		layer int
		typ   string
	}
	owners := map[string]owner{}
	venvEntries, err := ParseList(venv)
	if err != nil {
		return &Error{Reason: fmt.Sprintf("layer of the virtual environment: %v", err)}
	}
	for _, e := range venvEntries {
		owners[e.Path] = owner{layer: venvOwner, typ: e.Type}
	}
	for i, b := range lists {
		entries, err := ParseList(b)
		if err != nil {
			return &Error{Reason: fmt.Sprintf("layer of %s: %v", Label(locks[i]), err)}
		}
		var distInfos []string
		for _, e := range entries {
			if !InsideVenv(e) {
				escaped = append(escaped, fmt.Sprintf("%s writes %s", Label(locks[i]), e.Path))
				continue
			}
			if e.Type == "d" && isTopDistInfo(e.Path) {
				distInfos = append(distInfos, path.Base(e.Path))
			}
			if prev, ok := owners[e.Path]; ok && prev.layer != i && (e.Type != "d" || prev.typ != "d") {
				if prev.layer == venvOwner {
					overVenv = append(overVenv, fmt.Sprintf("%s replaces %s", Label(locks[i]), e.Path))
				} else {
					conflicts = append(conflicts, fmt.Sprintf("%s is written by both %s and %s", e.Path, Label(locks[prev.layer]), Label(locks[i])))
				}
				continue
			}
			owners[e.Path] = owner{layer: i, typ: e.Type}
		}
		mismatched = append(mismatched, distInfoMismatch(locks[i], distInfos)...)
	}
	switch {
	case len(escaped) > 0:
		return problemsError("a distribution layer writes outside the virtual environment "+VenvDir, escaped,
			"the distribution is unsafe: remove it from the requirements")
	case len(mismatched) > 0:
		return problemsError("a distribution layer does not hold the distribution its lock entry names", mismatched,
			"the index served files that are not what it listed: remove the distribution or fix the index")
	case len(overVenv) > 0:
		return problemsError("a distribution replaces or deletes the virtual environment's own files", overVenv,
			"a distribution may only add files of its own: remove it (or the requirement that pulls it in) from the requirements")
	case len(conflicts) > 0:
		return problemsError("distributions overwrite each other's files", conflicts,
			"remove one of the conflicting distributions from the requirements")
	}
	return nil
}

func problemsError(reason string, problems []string, hint string) error {
	sort.Strings(problems)
	more := ""
	if len(problems) > maxProblems {
		more = fmt.Sprintf("; and %d more", len(problems)-maxProblems)
		problems = problems[:maxProblems]
	}
	return &Error{Reason: reason + ": " + strings.Join(problems, "; ") + more, Hint: hint}
}

// insideVenv reports whether a layer entry is in the venv. The venv's
// parent directories may appear (as directories) because the overlay
// copies them up; nothing else outside may.
func InsideVenv(e Entry) bool {
	p := e.Path
	if p == VenvDir || strings.HasPrefix(p, VenvDir+"/") {
		return true
	}
	return e.Type == "d" && strings.HasPrefix(VenvDir, p+"/")
}

// isTopDistInfo reports whether p is a dist-info directory directly in the
// venv's site-packages (vendored ones inside packages do not count).
func isTopDistInfo(p string) bool {
	ok, _ := path.Match(VenvDir+"/lib/python*/site-packages/*.dist-info", p)
	return ok
}

// distInfoMismatch compares a layer's dist-info directories with its lock
// entries: one NAME-VERSION.dist-info per locked distribution, no other.
func distInfoMismatch(locked lock.Lock, found []string) []string {
	want := map[string]lock.Dist{}
	for _, d := range locked {
		want[distInfoKey(d.Name, d.Version)] = d
	}
	var out []string
	seen := map[string]bool{}
	for _, f := range found {
		name, version, _ := strings.Cut(strings.TrimSuffix(f, ".dist-info"), "-")
		k := distInfoKey(name, version)
		if _, ok := want[k]; !ok || seen[k] {
			out = append(out, fmt.Sprintf("the layer of %s contains %s", Label(locked), f))
			continue
		}
		seen[k] = true
	}
	for k, d := range want {
		if !seen[k] {
			out = append(out, fmt.Sprintf("the layer of %s has no dist-info of %s %s", Label(locked), d.Name, d.Version))
		}
	}
	return out
}

// distInfoKey compares names PEP 503-normalized and versions with '-' and
// '_' alike (wheel file and directory names escape '-' as '_').
func distInfoKey(name, version string) string {
	return lock.NormalizeName(name) + " " + strings.ToLower(strings.ReplaceAll(version, "-", "_"))
}

// layerLabel names a layer by its distributions.
func Label(l lock.Lock) string {
	names := make([]string, len(l))
	for i, d := range l {
		names[i] = d.Name + "==" + d.Version
	}
	if len(names) > 3 {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:3], ", "), len(names)-3)
	}
	return strings.Join(names, ", ")
}
