package engine

import (
	"context"
	"errors"

	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/layers"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"golang.org/x/sync/errgroup"
)

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
	if err := layers.Check(venvList, in.Locks, lists); err != nil {
		return fail(layerStepError(err))
	}
	return nil
}

// layerStepError is a layer check's refusal as the failure of the step
// that checks layers.
func layerStepError(err error) error {
	var le *layers.Error
	if errors.As(err, &le) {
		return &StepError{Step: sbllb.StepCheckLayers, Reason: le.Reason, Hint: le.Hint, Err: err}
	}
	return err
}
