package llb

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/lock"
)

// DistInfo is the dist-info directory name and METADATA text that stand
// for d, installed, in ResolveAdded's view of the installed set: the
// core-metadata fields pip's resolver reads of an installed distribution
// (Name, Version, Requires-Python, Provides-Extra, Requires-Dist), written
// from d.Meta, which the lock document recorded from pip's report. A
// distribution without recorded metadata, or whose name, version or
// metadata would not make one clean header line each, is an
// ErrInvalidArgument (the caller resolves everything instead).
func DistInfo(d lock.Dist) (dir, metadata string, err error) {
	if d.Meta == nil {
		return "", "", fmt.Errorf("%s %s: no recorded metadata: %w", d.Name, d.Version, errdefs.ErrInvalidArgument)
	}
	if !distNameRE.MatchString(d.Name) || !versionRE.MatchString(d.Version) || lock.NormalizeName(d.Meta.Name) != d.Name {
		return "", "", fmt.Errorf("%q %q: not a distribution name and version a dist-info directory can carry: %w", d.Name, d.Version, errdefs.ErrInvalidArgument)
	}
	var b strings.Builder
	b.WriteString("Metadata-Version: 2.1\n")
	fields := [][2]string{{"Name", d.Meta.Name}, {"Version", d.Version}}
	if d.Meta.RequiresPython != "" {
		fields = append(fields, [2]string{"Requires-Python", d.Meta.RequiresPython})
	}
	for _, e := range d.Meta.ProvidesExtra {
		fields = append(fields, [2]string{"Provides-Extra", e})
	}
	for _, r := range d.Meta.RequiresDist {
		fields = append(fields, [2]string{"Requires-Dist", r})
	}
	for _, f := range fields {
		if f[1] == "" || strings.ContainsAny(f[1], "\r\n\x00") {
			return "", "", fmt.Errorf("%s %s: metadata field %s %q cannot be one header line: %w", d.Name, d.Version, f[0], f[1], errdefs.ErrInvalidArgument)
		}
		b.WriteString(f[0] + ": " + f[1] + "\n")
	}
	// The wheel spec's escaping of the directory name (pip finds installed
	// distributions by the Name field; the directory only has to be one).
	dir = strings.ReplaceAll(d.Name, "-", "_") + "-" + strings.ReplaceAll(d.Version, "-", "_") + ".dist-info"
	return dir, b.String(), nil
}

var (
	distNameRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`) // PEP 503-normalized
	versionRE  = regexp.MustCompile(`^[A-Za-z0-9.+!_-]+$`)
)

// installedView is ResolveAdded's view of installed as installedview.py
// reads it.
func installedView(installed lock.Lock) ([]byte, error) {
	type entry struct {
		Dir   string            `json:"dir"`
		Files map[string]string `json:"files"`
	}
	view := struct {
		Dists []entry `json:"dists"`
	}{Dists: []entry{}}
	for _, d := range installed {
		dir, md, err := DistInfo(d)
		if err != nil {
			return nil, err
		}
		view.Dists = append(view.Dists, entry{Dir: dir, Files: map[string]string{"METADATA": md, "INSTALLER": "skillbuild\n"}})
	}
	return json.Marshal(view)
}
