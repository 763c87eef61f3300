package engine

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	bkclient "github.com/moby/buildkit/client"
	"github.com/skillbuild/skillbuild/store"
)

// Builders: where the LLB is solved.
const (
	// BuilderEmbedded is BuildKit inside the skillbuild process with its
	// containerd worker: steps run as containerd containers and the image
	// lands in containerd's store (the default).
	BuilderEmbedded = "embedded"
	// BuilderEmbeddedOCI is BuildKit inside the skillbuild process with its
	// OCI worker: runc and a snapshotter under the state root, no
	// containerd at all. Results go to outputs (OCI archive or layout) or,
	// with Request.Load, into a containerd.
	BuilderEmbeddedOCI = "embedded-oci"
)

// builderTLS are the client certificate files for a remote buildkitd, as
// buildctl's --tlscacert/--tlscert/--tlskey.
type builderTLS struct {
	ca, cert, key string
}

// remoteBuilder reports whether builder names an existing buildkitd.
func remoteBuilder(builder string) bool {
	return strings.HasPrefix(builder, "tcp://") || strings.HasPrefix(builder, "unix://")
}

// WithBuilder selects where builds run: BuilderEmbedded (default),
// BuilderEmbeddedOCI, or the address of a running buildkitd,
// tcp://HOST:PORT or unix:///PATH. A remote builder runs the same LLB with
// the same session (index proxy, find-links) as the embedded ones; only
// the process limit of the build steps is the builder's own policy.
func WithBuilder(builder string) Opt {
	return func(o *options) error {
		switch {
		case builder == "" || builder == BuilderEmbedded:
			o.builder = BuilderEmbedded
		case builder == BuilderEmbeddedOCI:
			o.builder = builder
		case strings.HasPrefix(builder, "unix://"):
			if p := strings.TrimPrefix(builder, "unix://"); !strings.HasPrefix(p, "/") {
				return fmt.Errorf("builder %q: a unix socket address needs an absolute path, unix:///PATH: %w", builder, errdefs.ErrInvalidArgument)
			}
			o.builder = builder
		case strings.HasPrefix(builder, "tcp://"):
			u, err := url.Parse(builder)
			if err != nil || u.Hostname() == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
				return fmt.Errorf("builder %q: expected tcp://HOST:PORT: %w", builder, errdefs.ErrInvalidArgument)
			}
			o.builder = builder
		default:
			return fmt.Errorf("builder %q: expected %s, %s, tcp://HOST:PORT or unix:///PATH: %w", builder, BuilderEmbedded, BuilderEmbeddedOCI, errdefs.ErrInvalidArgument)
		}
		return nil
	}
}

// WithBuilderTLS sets the TLS files for a remote builder: ca verifies the
// buildkitd's certificate, cert and key (both or neither) authenticate
// skillbuild to it (mutual TLS, as buildctl's --tlscacert, --tlscert,
// --tlskey). Empty values mean no TLS.
func WithBuilderTLS(ca, cert, key string) Opt {
	return func(o *options) error {
		if (cert == "") != (key == "") {
			return fmt.Errorf("builder TLS: give both a client certificate and its key, or neither: %w", errdefs.ErrInvalidArgument)
		}
		if ca == "" && cert != "" {
			return fmt.Errorf("builder TLS: a client certificate needs the builder's CA certificate too: %w", errdefs.ErrInvalidArgument)
		}
		for _, f := range []string{ca, cert, key} {
			if f == "" {
				continue
			}
			if _, err := os.Stat(f); err != nil {
				return fmt.Errorf("builder TLS file: %w: %w", err, errdefs.ErrInvalidArgument)
			}
		}
		o.tls = builderTLS{ca: ca, cert: cert, key: key}
		return nil
	}
}

// builderAnswerTimeout bounds the first call to a remote builder.
var builderAnswerTimeout = 10 * time.Second

// newRemote connects to a running buildkitd. Nothing is started locally
// and the state root is not locked: the builder keeps its own cache and
// serialises nothing per client. A builder that does not answer is
// errdefs.ErrUnavailable, with its address.
func newRemote(ctx context.Context, o options) (*Engine, error) {
	if o.tls.ca != "" && !strings.HasPrefix(o.builder, "tcp://") {
		return nil, fmt.Errorf("builder %s: TLS files are for tcp:// builders: %w", o.builder, errdefs.ErrInvalidArgument)
	}
	var copts []bkclient.ClientOpt
	if o.tls.ca != "" {
		u, _ := url.Parse(o.builder) // checked by WithBuilder
		copts = append(copts, bkclient.WithServerConfig(u.Hostname(), o.tls.ca))
	}
	if o.tls.cert != "" {
		copts = append(copts, bkclient.WithCredentials(o.tls.cert, o.tls.key))
	}
	cl, err := bkclient.New(ctx, o.builder, copts...)
	if err != nil {
		return nil, fmt.Errorf("builder %s: %w: %w", o.builder, err, errdefs.ErrInvalidArgument)
	}
	actx, cancel := context.WithTimeout(ctx, builderAnswerTimeout)
	defer cancel()
	ws, err := cl.ListWorkers(actx)
	if err != nil {
		cl.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("builder %s does not answer (%s); is buildkitd running there, and are --builder-ca/--builder-cert/--builder-key its certificates? %w",
			o.builder, firstLine(err.Error()), errdefs.ErrUnavailable)
	}
	if len(ws) == 0 {
		cl.Close()
		return nil, fmt.Errorf("builder %s has no workers: %w", o.builder, errdefs.ErrUnavailable)
	}
	return &Engine{opts: o, client: cl, remote: true}, nil
}

// builderGone tells a remote builder that stopped answering during a
// solve (killed, restarted, network cut) from a failed build: it is a
// temporary failure, errdefs.ErrUnavailable with the builder's address.
func (e *Engine) builderGone(ctx context.Context, solveErr error) error {
	if !e.remote || ctx.Err() != nil {
		return nil
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), builderAnswerTimeout)
	defer cancel()
	if _, err := e.client.ListWorkers(actx); err == nil {
		return nil
	}
	return fmt.Errorf("builder %s stopped answering during the build (%s); nothing was tagged, try again: %w",
		e.opts.builder, firstLine(solveErr.Error()), errdefs.ErrUnavailable)
}

// containerd returns the engine's containerd client, connecting on first
// use when the builder does not need one itself (embedded-oci and remote
// builders reach containerd only to load a result).
func (e *Engine) containerd(ctx context.Context) (*ctd.Client, error) {
	if e.ctd != nil {
		return e.ctd, nil
	}
	c, err := store.Dial(ctx, e.opts.address, e.opts.namespace)
	if err != nil {
		return nil, fmt.Errorf("load the image into containerd: %w", err)
	}
	e.ctd = c
	return c, nil
}

// closeRemote is Close for a remote builder: only clients to close.
func (e *Engine) closeRemote() error {
	var errs []error
	if e.client != nil {
		errs = append(errs, e.client.Close())
	}
	if e.ctd != nil {
		errs = append(errs, e.ctd.Close())
	}
	return errors.Join(errs...)
}

// Builder is where the engine's builds run: BuilderEmbedded,
// BuilderEmbeddedOCI or a buildkitd address.
func (e *Engine) Builder() string { return e.opts.builder }
