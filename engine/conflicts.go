package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/skillbuild/skillbuild/config"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"golang.org/x/sync/errgroup"
)

// checkLayers makes sure no two distributions of a layered install write
// the same file, which the merge would otherwise resolve silently (the
// later layer wins). It reads each layer's file list, which also runs the
// install steps, in parallel; only when a layer has no list (wheels built
// from source) does it fall back to sbllb.Verify over the merged tree,
// which has to materialise the merge. A conflict is returned through fail,
// as a *StepError naming the paths and distributions.
func checkLayers(ctx context.Context, c gateway.Client, in sbllb.Installed, s config.Skill, n int, fail func(error) error) error {
	if in.Single || n <= 1 {
		return nil
	}
	if in.Manifests == nil {
		def, err := sbllb.Verify(in.Root, s).Marshal(ctx)
		if err != nil {
			return fail(err)
		}
		_, err = c.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), Evaluate: true})
		return err
	}
	lists := make([][]byte, len(in.Manifests))
	g, gctx := errgroup.WithContext(ctx)
	for i, m := range in.Manifests {
		g.Go(func() error {
			def, err := m.Marshal(gctx)
			if err != nil {
				return err
			}
			res, err := c.Solve(gctx, gateway.SolveRequest{Definition: def.ToPB()})
			if err != nil {
				return err
			}
			ref, err := res.SingleRef()
			if err != nil {
				return err
			}
			lists[i], err = ref.ReadFile(gctx, gateway.ReadRequest{Filename: sbllb.ManifestFile})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err // an install step failed: explained from its log
	}
	if conflicts := findConflicts(lists); len(conflicts) > 0 {
		return fail(&StepError{
			Step:   sbllb.StepCheckLayers,
			Reason: "distributions overwrite each other's files: " + strings.Join(conflicts, "; "),
			Hint:   "remove one of the conflicting distributions from the requirements",
		})
	}
	return nil
}

// findConflicts reads "<dist>\t<path>" lines and reports every path that
// two distributions claim.
func findConflicts(lists [][]byte) []string {
	owner := map[string]string{}
	var out []string
	for _, l := range lists {
		for _, line := range strings.Split(string(l), "\n") {
			dist, path, ok := strings.Cut(line, "\t")
			if !ok {
				continue
			}
			if prev, dup := owner[path]; dup && prev != dist {
				out = append(out, fmt.Sprintf("%s is written by both %s and %s", path, prev, dist))
				continue
			}
			owner[path] = dist
		}
	}
	sort.Strings(out)
	return out
}
