package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	bkclient "github.com/moby/buildkit/client"
	"github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/labels"
	"github.com/skillbuild/skillbuild/runtime"
	"github.com/skillbuild/skillbuild/scan"
	"github.com/skillbuild/skillbuild/server"
	"github.com/skillbuild/skillbuild/store"
	"github.com/urfave/cli/v2"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve the commands as a local HTTP/JSON API, with warm single-use run containers",
		Description: `Answers on a unix socket (mode 0660, group --group) or, with --token-file, on
TCP on a loopback address. The endpoints answer with the documents of the
commands' --json output:

  GET  /v1/health    POST /v1/install   POST /v1/scan   GET /v1/skills
  POST /v1/remove    POST /v1/run       GET  /metrics (Prometheus text)

Runs take a container that was started ahead of time (per skill image and
limits, --warm-per-skill of them, at most --max-warm in all) and destroy it
afterwards; a replacement starts in the background. Builds take the same
state lock as the CLI, which keeps working beside the server. SIGTERM
drains: requests in flight finish (runs at the latest at their deadline),
then the warm containers are removed. A server killed outright leaves its
warm containers to the next one, which removes them when it starts.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: server.DefaultListen, Usage: "`ADDRESS`: unix:///path/to.sock or tcp://127.0.0.1:PORT"},
			&cli.StringFlag{Name: "group", Usage: "`GROUP` (name or gid) owning the unix socket"},
			&cli.StringFlag{Name: "token-file", Usage: "`FILE` holding the bearer token clients must send (required for TCP)"},
			&cli.IntFlag{Name: "max-warm", Value: 8, Usage: "warm containers at most, all skills together (0: none)"},
			&cli.IntFlag{Name: "warm-per-skill", Value: 2, Usage: "warm containers per skill image and limits"},
			&cli.StringFlag{Name: "warm-memory", Usage: "bound the sum of the warm containers' memory limits (e.g. 4g)"},
			&cli.StringFlag{Name: "idle-timeout", Value: "5m", Usage: "destroy a skill's warm containers after this long without a run"},
			&cli.StringFlag{Name: "max-body", Value: "8m", Usage: "largest request body"},
		},
		Action: serve,
	}
}

// serveOptions turns the flags into the pool's and the server's options.
func serveOptions(c *cli.Context) ([]runtime.PoolOpt, []server.Opt, error) {
	idle, err := config.ParseDuration(c.String("idle-timeout"))
	if err != nil {
		return nil, nil, fmt.Errorf("--idle-timeout: %w", err)
	}
	popts := []runtime.PoolOpt{runtime.WithMaxWarm(c.Int("max-warm")), runtime.WithIdleTimeout(idle)}
	popts = append(popts, runtime.WithWarmPerImage(c.Int("warm-per-skill")))
	if s := c.String("warm-memory"); s != "" {
		n, err := config.ParseSize(s)
		if err != nil {
			return nil, nil, fmt.Errorf("--warm-memory: %w", err)
		}
		popts = append(popts, runtime.WithMemoryBudget(n))
	}
	if err := runtime.CheckPoolOpts(popts...); err != nil {
		return nil, nil, fmt.Errorf("--max-warm, --warm-per-skill, --warm-memory, --idle-timeout: %w", err)
	}
	body, err := config.ParseSize(c.String("max-body"))
	if err != nil {
		return nil, nil, fmt.Errorf("--max-body: %w", err)
	}
	sopts := []server.Opt{server.WithMaxBody(body)}
	if f := c.String("token-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("--token-file: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		sopts = append(sopts, server.WithToken(string(b)))
	}
	return popts, sopts, nil
}

func serve(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments: %w", errdefs.ErrInvalidArgument)
	}
	popts, sopts, err := serveOptions(c)
	if err != nil {
		return err
	}
	// Bad input fails before anything is started.
	ops := &serveOps{env: envOf(c)}
	srv, err := server.New(ops, sopts...)
	if err != nil {
		return err
	}
	ln, err := server.Listen(c.String("listen"), c.String("group"))
	if err != nil {
		return err
	}
	defer ln.Close()
	if err := srv.Check(ln); err != nil {
		return err
	}

	// ctx ends at SIGTERM or Ctrl-C (see main): the server then drains.
	ctx := c.Context
	client, err := dial(c)
	if err != nil {
		return err
	}
	defer client.Close()
	// Rootless without delegated cgroups, runs are refused: a server does
	// not accept per-process rlimits for its callers.
	ropts := append([]runtime.Opt{runtime.WithStateDir(runsDir(c)), runtime.WithoutSweep()}, runtimeModeOpts(modeOf(c), true)...)
	runner, err := runtime.New(ctx, client, ropts...)
	if err != nil {
		return err
	}
	pool, err := runtime.NewPool(ctx, runner, popts...)
	if err != nil {
		return err
	}
	ops.client, ops.pool = client, pool
	fmt.Fprintf(c.App.ErrWriter, "skillbuild: serving on %s\n", c.String("listen"))
	serveErr := srv.Serve(ctx, ln)
	ln.Close()
	fmt.Fprintln(c.App.ErrWriter, "skillbuild: draining: removing warm containers")
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := pool.Close(cctx); err != nil {
		return err
	}
	if serveErr != nil {
		return serveErr
	}
	fmt.Fprintln(c.App.ErrWriter, "skillbuild: stopped")
	return nil
}

// serveOps are the CLI's commands as the server's operations: the same
// inputs, the same documents.
type serveOps struct {
	env    env
	client *ctd.Client
	pool   *runtime.Pool

	mu       sync.Mutex
	preloads map[digest.Digest][]string // per image (target) digest
}

// preloadOf is the preload list the image records (labels.Preload), read
// once per image digest. An image that cannot be read has none here: the
// run then reports why.
func (o *serveOps) preloadOf(ctx context.Context, ref string) []string {
	img, err := o.client.GetImage(ctx, ref)
	if err != nil {
		return nil
	}
	key := img.Target().Digest
	o.mu.Lock()
	mods, ok := o.preloads[key]
	o.mu.Unlock()
	if ok {
		return mods
	}
	spec, err := img.Spec(ctx)
	if err != nil {
		return nil
	}
	if l := spec.Config.Labels[labels.Preload]; l != "" {
		mods = strings.Split(l, ",")
	}
	o.mu.Lock()
	if o.preloads == nil {
		o.preloads = map[digest.Digest][]string{}
	}
	o.preloads[key] = mods
	o.mu.Unlock()
	return mods
}

func (o *serveOps) ExitCode(err error) int { return exitCode(err) }

func (o *serveOps) Health(ctx context.Context) (any, error) {
	ok, err := o.client.IsServing(ctx)
	if err != nil || !ok {
		return nil, fmt.Errorf("containerd at %s is not serving: %v: %w", o.env.address, err, errdefs.ErrUnavailable)
	}
	st := o.pool.Stats()
	return map[string]any{"ok": true, "warm": st.Warm, "starting": st.Starting, "destroying": st.Destroying}, nil
}

func (o *serveOps) List(ctx context.Context) (any, error) {
	imgs, err := store.ListImages(ctx, o.client)
	if imgs == nil {
		imgs = []store.SkillImage{}
	}
	if err != nil {
		return nil, err
	}
	return imgs, nil
}

func (o *serveOps) Remove(ctx context.Context, req server.RemoveRequest) (any, error) {
	removed, err := store.RemoveImages(ctx, o.client, store.WithSkill(req.SkillID, req.Version))
	out := rmResult{Removed: removed}
	if out.Removed == nil {
		out.Removed = []store.SkillImage{}
	}
	if err != nil {
		out.Error = err.Error()
	}
	for _, s := range removed {
		if name, err := store.ImageName(s.Tag); err == nil {
			o.pool.Drop(name)
		}
	}
	return out, err
}

func (o *serveOps) Run(ctx context.Context, r server.RunRequest) (any, error) {
	out := &runOutput{SkillID: r.SkillID}
	skill, err := config.Load(config.Input{
		Dir: "/", ID: r.SkillID, Version: orDefault(r.Version, "1"), Repo: r.Repo,
		Memory: r.Memory, CPUs: r.CPUs, Pids: r.Pids, Timeout: r.Timeout, TmpfsSize: r.TmpfsSize, OutputLimit: r.OutputLimit,
		Set: map[string]bool{},
	})
	if err != nil {
		out.fill(runtime.Result{}, err)
		return out, err
	}
	req := runtime.Request{Code: []byte(r.Code), Inputs: r.Inputs, Limits: runtime.Limits(skill.Run), User: r.User, Preload: r.Preload}
	req.Image, out.ImageTag, err = runImage(skill, r.Image)
	if err != nil {
		out.fill(runtime.Result{}, err)
		return out, err
	}
	if len(req.Preload) == 0 {
		// The skill's own list, from its skill.yaml.
		req.Preload = o.preloadOf(ctx, req.Image)
	}
	res, err := o.pool.Run(ctx, req)
	err = runError(err, skill, r.Image, out.ImageTag)
	out.fill(res, err)
	return out, err
}

func (o *serveOps) Install(ctx context.Context, r server.InstallRequest, progress func(any)) (any, error) {
	in := config.Input{
		Dir: "/", ID: r.SkillID, Version: orDefault(r.Version, "1"), Repo: r.Repo, Base: r.Base,
		Requirements: r.Requirements, IndexURL: r.IndexURL, ExtraIndexURL: r.ExtraIndexURLs, AllowSdist: r.AllowSdist,
		BuildMemory: r.BuildMemory, BuildCPUs: r.BuildCPUs, BuildPids: r.BuildPids, BuildTimeout: r.BuildTimeout,
		NoScan: r.NoScan, Allow: r.Allow, MinSeverity: r.MinSeverity, AllowStaleDB: r.AllowStaleDB,
		Set: map[string]bool{},
	}
	ch := make(chan *bkclient.SolveStatus)
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for st := range ch {
			if progress != nil {
				progress(st)
			}
		}
	}()
	out, err := buildSkill(ctx, o.env, in, buildOptions{refresh: r.Refresh}, ch)
	<-forwarded
	if err == nil {
		// Warm containers of the image's previous build go now.
		if name, nerr := store.ImageName(out.ImageTag); nerr == nil {
			o.pool.Drop(name)
		}
	}
	return out, err
}

func (o *serveOps) Scan(ctx context.Context, r server.ScanRequest) (any, error) {
	policy, err := parseScanPolicy(r.MinSeverity, r.AllowStaleDB, r.Allow)
	if err != nil {
		return nil, err
	}
	if len(r.Requirements) == 0 {
		return nil, fmt.Errorf("nothing to scan: the request's \"requirements\" is empty: %w", errdefs.ErrInvalidArgument)
	}
	var pkgs []scan.Package
	if r.NoResolve {
		pins, err := config.ParsePins("requirements", strings.NewReader(strings.Join(r.Requirements, "\n")))
		if err != nil {
			return nil, err
		}
		if pkgs, err = pinnedPackages(pins); err != nil {
			return nil, err
		}
	} else {
		in := config.Input{Dir: "/", Requirements: r.Requirements, Base: r.Base, IndexURL: r.IndexURL,
			ExtraIndexURL: r.ExtraIndexURLs, AllowSdist: r.AllowSdist, Set: map[string]bool{}}
		if pkgs, err = resolvePackages(ctx, o.env, in, nil); err != nil {
			return nil, err
		}
	}
	db, err := scan.Open(o.env.root)
	if err != nil {
		return nil, err
	}
	verdict, err := scan.Check(db, pkgs, policy, time.Now())
	if err != nil && !isVulnerable(err) {
		return nil, err
	}
	return verdict, err
}

func (o *serveOps) Metrics() []server.Metric {
	st := o.pool.Stats()
	ms := []server.Metric{
		{Name: "skillbuild_pool_warm", Help: "Warm run containers ready, all images.", Value: float64(st.Warm)},
		{Name: "skillbuild_pool_starting", Help: "Warm run containers being started.", Value: float64(st.Starting)},
		{Name: "skillbuild_pool_hits_total", Help: "Runs that got a warm container.", Type: "counter", Value: float64(st.Hits)},
		{Name: "skillbuild_pool_misses_total", Help: "Runs that started their own container.", Type: "counter", Value: float64(st.Misses)},
		{Name: "skillbuild_pool_discarded_total", Help: "Warm containers destroyed unused (idle, image changed or removed, died).", Type: "counter", Value: float64(st.Discarded)},
		{Name: "skillbuild_pool_destroying", Help: "Used or discarded run containers being removed.", Value: float64(st.Destroying)},
		{Name: "skillbuild_pool_waited_total", Help: "Runs that waited for a warm container being started.", Type: "counter", Value: float64(st.Waited)},
		{Name: "skillbuild_pool_start_failures_total", Help: "Background starts of warm containers that failed.", Type: "counter", Value: float64(st.StartFailures)},
	}
	first := true
	for img, n := range st.WarmByImage {
		m := server.Metric{Name: "skillbuild_pool_warm_by_image", Labels: map[string]string{"image": img}, Value: float64(n)}
		if first {
			m.Help, first = "Warm run containers ready, per image.", false
		}
		ms = append(ms, m)
	}
	return ms
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
