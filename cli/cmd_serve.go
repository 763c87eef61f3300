package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/server"
	"github.com/skillbuild/skillbuild/skill"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/urfave/cli/v2"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve the commands as a local HTTP/JSON API, with warm single-use run containers",
		Description: `Answers on a unix socket (mode 0660, group --group) or, with --token-file, on
TCP on a loopback address. The endpoints answer with the documents of the
commands' --json output:

  GET  /v1/health    POST /v1/install   POST /v1/scan      GET /v1/skills
  POST /v1/remove    POST /v1/run       POST /v1/inspect   GET /metrics (Prometheus text)
  GET  /v1/openapi.json (the API as an OpenAPI 3.1 document)
  POST /v1/sessions  POST /v1/sessions/{id}/run  DELETE /v1/sessions/{id}  GET /v1/sessions

Runs take a container that was started ahead of time (per skill image and
limits at least --warm-per-skill of them, more while runs come faster than
replacements start, at most --max-warm in all) and destroy it afterwards; a
replacement starts in the background. Builds take the same
state lock as the CLI, which keeps working beside the server. SIGTERM
drains: requests in flight finish (runs at the latest at their deadline),
then the warm containers are removed. A server killed outright leaves its
warm containers to the next one, which removes them when it starts.

Callers get the ceilings set here (--max-*; 0: none), never more: a run
asking for more is refused (400, exit code 2) naming the ceiling, and so
is uid 0 unless --allow-root-user (users are numeric uid[:gid]), and a
runtime not in --runtimes.

A session (POST /v1/sessions) is one container whose interpreter serves a
sequence of calls, keeping globals, imported modules and files between
them (docs/sessions.md). It belongs to whoever opened it (the peer's uid on
the unix socket, the token holder on TCP). At most --max-sessions are open
at once (more: 429, exit code 75); one ends after --session-idle without a
call and --session-lifetime after it opened, unless its request asks for
other times within --max-session-idle and --max-session-lifetime; a call
that times out, is OOM-killed or kills its interpreter ends it; draining
ends them all.`,
		Flags: append(trustFlags(),
			&cli.StringFlag{Name: "listen", Value: server.DefaultListen, Usage: "`ADDRESS`: unix:///path/to.sock or tcp://127.0.0.1:PORT"},
			&cli.StringFlag{Name: "group", Usage: "`GROUP` (name or gid) owning the unix socket"},
			&cli.StringFlag{Name: "token-file", Usage: "`FILE` holding the bearer token clients must send (required for TCP)"},
			&cli.IntFlag{Name: "max-warm", Value: 8, Usage: "warm containers at most, all skills together (0: none)"},
			&cli.IntFlag{Name: "warm-per-skill", Value: 2, Usage: "warm containers kept per skill image and limits at the least (the depth grows with the rate of runs, up to --max-warm)"},
			&cli.StringFlag{Name: "warm-memory", Usage: "bound the sum of the warm containers' memory limits (e.g. 4g)"},
			&cli.StringFlag{Name: "idle-timeout", Value: "5m", Usage: "destroy a skill's warm containers after this long without a run"},
			&cli.StringFlag{Name: "max-body", Value: "24m", Usage: "largest request body (a run's files at their cap of 16 MiB take about 21 MiB in base64)"},
			&cli.StringFlag{Name: "max-memory", Value: config.DefaultMaxRunMemory, Usage: "largest memory limit a run request may ask for"},
			&cli.StringFlag{Name: "max-cpus", Value: config.DefaultMaxRunCPUs, Usage: "largest CPU limit a run request may ask for"},
			&cli.StringFlag{Name: "max-pids", Value: config.DefaultMaxRunPids, Usage: "largest process limit a run request may ask for"},
			&cli.StringFlag{Name: "max-timeout", Value: config.DefaultMaxRunTimeout, Usage: "longest timeout a run request may ask for"},
			&cli.StringFlag{Name: "max-tmpfs-size", Value: config.DefaultMaxRunTmpfsSize, Usage: "largest /tmp a run request may ask for"},
			&cli.StringFlag{Name: "max-output-limit", Value: config.DefaultMaxRunOutputLimit, Usage: "largest output limit a run request may ask for"},
			&cli.BoolFlag{Name: "allow-root-user", Usage: "let run requests ask for uid 0 (\"user\": \"0\")"},
			&cli.StringSliceFlag{Name: "runtimes", Value: cli.NewStringSlice(config.Runtimes...), Usage: "the `RUNTIME`s a run request may ask for (\"runtime\"): runc, gvisor"},
			&cli.BoolFlag{Name: "allow-base-images", Usage: "let run requests name a base image (\"image\"); otherwise only skill images run"},
			&cli.IntFlag{Name: "max-sessions", Value: 32, Usage: "sessions open at once, all callers together (0: no sessions)"},
			&cli.StringFlag{Name: "session-idle", Value: "5m", Usage: "end a session after this long without a call, unless its request asks otherwise"},
			&cli.StringFlag{Name: "session-lifetime", Value: "1h", Usage: "end a session this long after it opened, unless its request asks otherwise"},
			&cli.StringFlag{Name: "max-session-idle", Value: "1h", Usage: "longest idle timeout a session request may ask for"},
			&cli.StringFlag{Name: "max-session-lifetime", Value: "8h", Usage: "longest lifetime a session request may ask for"},
			&cli.StringSliceFlag{Name: config.FlagAllow, Usage: "admit images from elsewhere despite a vulnerability: `ID[@PACKAGE]:YYYY-MM-DD:REASON`"},
			&cli.StringFlag{Name: config.FlagMinSeverity, Usage: "only findings at or above `SEVERITY` refuse an image from elsewhere"},
			&cli.BoolFlag{Name: config.FlagAllowStaleDB, Usage: "admit images from elsewhere with a database older than --db-max-age"},
			&cli.StringFlag{Name: config.FlagDBMaxAge, Value: config.DefaultDBMaxAge, Usage: "refuse images from elsewhere when the database is older than `AGE`"},
		),
		Action: serve,
	}
}

// serveCeilings are the --max-* flags: what run requests may ask for.
func serveCeilings(c *cli.Context) (skill.Ceilings, error) {
	ceil := skill.Ceilings{AllowRoot: c.Bool("allow-root-user"), AllowBaseImages: c.Bool("allow-base-images"), Runtimes: c.StringSlice("runtimes")}
	for _, r := range ceil.Runtimes {
		if err := config.ValidateRuntime(r); err != nil {
			return ceil, fmt.Errorf("--runtimes: %w", err)
		}
	}
	var err error
	for _, f := range []struct {
		flag  string
		parse func(string) error
	}{
		{"max-memory", func(v string) (err error) { ceil.Limits.MemoryBytes, err = config.ParseSize(v); return }},
		{"max-cpus", func(v string) (err error) { ceil.Limits.CPUs, err = config.ParseCPUs(v); return }},
		{"max-pids", func(v string) (err error) { ceil.Limits.Pids, err = config.ParsePids(v); return }},
		{"max-timeout", func(v string) (err error) { ceil.Limits.Timeout, err = config.ParseDuration(v); return }},
		{"max-tmpfs-size", func(v string) (err error) { ceil.Limits.TmpfsBytes, err = config.ParseSize(v); return }},
		{"max-output-limit", func(v string) (err error) { ceil.Limits.OutputLimitBytes, err = config.ParseSize(v); return }},
	} {
		if err = f.parse(c.String(f.flag)); err != nil {
			return ceil, fmt.Errorf("--%s: %w", f.flag, err)
		}
	}
	return ceil, nil
}

// serveSessions are the session flags.
func serveSessions(c *cli.Context) (skill.Sessions, error) {
	ss := skill.Sessions{Max: c.Int("max-sessions")}
	for _, f := range []struct {
		flag string
		to   *time.Duration
	}{{"session-idle", &ss.Idle}, {"session-lifetime", &ss.Lifetime}, {"max-session-idle", &ss.MaxIdle}, {"max-session-lifetime", &ss.MaxLifetime}} {
		d, err := config.ParseDuration(c.String(f.flag))
		if err != nil {
			return ss, fmt.Errorf("--%s: %w", f.flag, err)
		}
		*f.to = d
	}
	return ss, nil
}

// serveOptions turns the flags into the warm pool's and the server's
// options.
func serveOptions(c *cli.Context) (skill.WarmPool, []server.Opt, error) {
	pool := skill.WarmPool{MaxWarm: c.Int("max-warm"), PerImage: c.Int("warm-per-skill")}
	idle, err := config.ParseDuration(c.String("idle-timeout"))
	if err != nil {
		return pool, nil, fmt.Errorf("--idle-timeout: %w", err)
	}
	pool.IdleTimeout = idle
	if s := c.String("warm-memory"); s != "" {
		n, err := config.ParseSize(s)
		if err != nil {
			return pool, nil, fmt.Errorf("--warm-memory: %w", err)
		}
		pool.MemoryBudget = n
	}
	body, err := config.ParseSize(c.String("max-body"))
	if err != nil {
		return pool, nil, fmt.Errorf("--max-body: %w", err)
	}
	sopts := []server.Opt{server.WithMaxBody(body)}
	if f := c.String("token-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return pool, nil, fmt.Errorf("--token-file: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		sopts = append(sopts, server.WithToken(string(b)))
	}
	return pool, sopts, nil
}

func serve(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments: %w", errdefs.ErrInvalidArgument)
	}
	pool, sopts, err := serveOptions(c)
	if err != nil {
		return err
	}
	// Bad input fails before anything is started.
	if err := pool.Check(); err != nil {
		return fmt.Errorf("--max-warm, --warm-per-skill, --warm-memory, --idle-timeout: %w", err)
	}
	ceil, err := serveCeilings(c)
	if err != nil {
		return err
	}
	sessions, err := serveSessions(c)
	if err != nil {
		return err
	}
	policy, err := config.LoadPolicy(config.Input{Allow: c.StringSlice(config.FlagAllow), MinSeverity: c.String(config.FlagMinSeverity),
		AllowStaleDB: c.Bool(config.FlagAllowStaleDB), DBMaxAge: c.String(config.FlagDBMaxAge), Set: map[string]bool{config.FlagAllow: c.IsSet(config.FlagAllow)}})
	if err != nil {
		return err
	}
	svc, err := newService(c, skill.WithWarmPool(pool), skill.WithFace(api.FaceAPI), skill.WithCeilings(ceil), skill.WithRunPolicy(policy),
		skill.WithSessions(sessions))
	if err != nil {
		return err
	}
	srv, err := server.New(svc, sopts...)
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
	if err := svc.StartPool(ctx); err != nil {
		closeService(svc)
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "skillbuild: serving on %s\n", c.String("listen"))
	serveErr := srv.Serve(ctx, ln)
	ln.Close()
	fmt.Fprintln(c.App.ErrWriter, "skillbuild: draining: ending sessions, removing warm containers")
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := svc.Close(cctx); err != nil {
		return err
	}
	if serveErr != nil {
		return serveErr
	}
	fmt.Fprintln(c.App.ErrWriter, "skillbuild: stopped")
	return nil
}
