package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/skillbuild/skillbuild/config"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/skillbuild/skillbuild/lock"
	"golang.org/x/sync/errgroup"
)

// maxLayerProblems bounds how many problems a failed layer check names.
const maxLayerProblems = 10

// checkLayers checks every distribution layer from its real contents
// (llb.ListLayers lists the layers themselves, not what the installer
// says it wrote) before anything is exported, for builders whose exported
// blobs this process cannot read (the embedded builder checks those
// instead: checkExportedLayers): nothing outside the venv,
// exactly the locked distributions' dist-info directories, no file of the
// venv's own replaced or deleted, and no file written by two layers (the
// merge would silently let the later one win).
// A failure is returned through fail as a *StepError naming the layers,
// paths and distributions.
func checkLayers(ctx context.Context, c gateway.Client, venv llb.State, in sbllb.Installed, s config.Skill, fail func(error) error) error {
	if len(in.Layers) == 0 {
		return nil
	}
	def, err := sbllb.ListLayers(venv, in, s).Marshal(ctx)
	if err != nil {
		return fail(err)
	}
	res, err := c.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return err
	}
	ref, err := res.SingleRef()
	if err != nil {
		return fail(err)
	}
	lists := make([][]byte, len(in.Layers))
	var venvList []byte
	g, gctx := errgroup.WithContext(ctx)
	for i := range in.Layers {
		g.Go(func() error {
			var err error
			lists[i], err = ref.ReadFile(gctx, gateway.ReadRequest{Filename: sbllb.LayerList(i)})
			return err
		})
	}
	g.Go(func() error {
		var err error
		venvList, err = ref.ReadFile(gctx, gateway.ReadRequest{Filename: sbllb.VenvLayerList})
		return err
	})
	if err := g.Wait(); err != nil {
		return err // reading a list runs the install steps: a failure is explained from its log
	}
	if err := checkLayerContents(venvList, in.Locks, lists); err != nil {
		return fail(err)
	}
	return nil
}

// layerEntry is one line of a layer list: type ("f", "d", "l", "o") and
// path in the image.
type layerEntry struct{ typ, path string }

func parseLayerList(b []byte) ([]layerEntry, error) {
	var out []layerEntry
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		var e []string
		if err := json.Unmarshal([]byte(line), &e); err != nil || len(e) != 2 {
			return nil, fmt.Errorf("bad layer list line %q", line)
		}
		out = append(out, layerEntry{typ: e[0], path: e[1]})
	}
	return out, nil
}

// venvLayer is the owner, in checkLayerContents, of the venv layer's
// entries.
const venvLayer = -1

// checkLayerContents checks the layer lists (lists[i] is layer i's, holding
// locks[i]) against each other and against the venv layer's list venv
// (the layer below them all) and returns a *StepError naming at most
// maxLayerProblems problems, or nil. A distribution layer may share
// directories with the venv and the other layers, and nothing else.
func checkLayerContents(venv []byte, locks []lock.Lock, lists [][]byte) error {
	var escaped, mismatched, overVenv, conflicts []string
	type owner struct {
		layer int
		typ   string
	}
	owners := map[string]owner{}
	venvEntries, err := parseLayerList(venv)
	if err != nil {
		return &StepError{Step: sbllb.StepCheckLayers, Reason: fmt.Sprintf("layer of the virtual environment: %v", err)}
	}
	for _, e := range venvEntries {
		owners[e.path] = owner{layer: venvLayer, typ: e.typ}
	}
	for i, b := range lists {
		entries, err := parseLayerList(b)
		if err != nil {
			return &StepError{Step: sbllb.StepCheckLayers, Reason: fmt.Sprintf("layer of %s: %v", layerLabel(locks[i]), err)}
		}
		var distInfos []string
		for _, e := range entries {
			if !insideVenv(e) {
				escaped = append(escaped, fmt.Sprintf("%s writes %s", layerLabel(locks[i]), e.path))
				continue
			}
			if e.typ == "d" && isTopDistInfo(e.path) {
				distInfos = append(distInfos, path.Base(e.path))
			}
			if prev, ok := owners[e.path]; ok && prev.layer != i && (e.typ != "d" || prev.typ != "d") {
				if prev.layer == venvLayer {
					overVenv = append(overVenv, fmt.Sprintf("%s replaces %s", layerLabel(locks[i]), e.path))
				} else {
					conflicts = append(conflicts, fmt.Sprintf("%s is written by both %s and %s", e.path, layerLabel(locks[prev.layer]), layerLabel(locks[i])))
				}
				continue
			}
			owners[e.path] = owner{layer: i, typ: e.typ}
		}
		mismatched = append(mismatched, distInfoMismatch(locks[i], distInfos)...)
	}
	switch {
	case len(escaped) > 0:
		return layerError("a distribution layer writes outside the virtual environment "+sbllb.VenvDir, escaped,
			"the distribution is unsafe: remove it from the requirements")
	case len(mismatched) > 0:
		return layerError("a distribution layer does not hold the distribution its lock entry names", mismatched,
			"the index served files that are not what it listed: remove the distribution or fix the index")
	case len(overVenv) > 0:
		return layerError("a distribution replaces or deletes the virtual environment's own files", overVenv,
			"a distribution may only add files of its own: remove it (or the requirement that pulls it in) from the requirements")
	case len(conflicts) > 0:
		return layerError("distributions overwrite each other's files", conflicts,
			"remove one of the conflicting distributions from the requirements")
	}
	return nil
}

func layerError(reason string, problems []string, hint string) error {
	sort.Strings(problems)
	more := ""
	if len(problems) > maxLayerProblems {
		more = fmt.Sprintf("; and %d more", len(problems)-maxLayerProblems)
		problems = problems[:maxLayerProblems]
	}
	return &StepError{Step: sbllb.StepCheckLayers, Reason: reason + ": " + strings.Join(problems, "; ") + more, Hint: hint}
}

// insideVenv reports whether a layer entry is in the venv. The venv's
// parent directories may appear (as directories) because the overlay
// copies them up; nothing else outside may.
func insideVenv(e layerEntry) bool {
	p := e.path
	if p == sbllb.VenvDir || strings.HasPrefix(p, sbllb.VenvDir+"/") {
		return true
	}
	return e.typ == "d" && strings.HasPrefix(sbllb.VenvDir, p+"/")
}

// isTopDistInfo reports whether p is a dist-info directory directly in the
// venv's site-packages (vendored ones inside packages do not count).
func isTopDistInfo(p string) bool {
	ok, _ := path.Match(sbllb.VenvDir+"/lib/python*/site-packages/*.dist-info", p)
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
			out = append(out, fmt.Sprintf("the layer of %s contains %s", layerLabel(locked), f))
			continue
		}
		seen[k] = true
	}
	for k, d := range want {
		if !seen[k] {
			out = append(out, fmt.Sprintf("the layer of %s has no dist-info of %s %s", layerLabel(locked), d.Name, d.Version))
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
func layerLabel(l lock.Lock) string {
	names := make([]string, len(l))
	for i, d := range l {
		names[i] = d.Name + "==" + d.Version
	}
	if len(names) > 3 {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:3], ", "), len(names)-3)
	}
	return strings.Join(names, ", ")
}
