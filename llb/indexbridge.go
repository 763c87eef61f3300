package llb

import (
	_ "embed"
	"strconv"

	"github.com/moby/buildkit/client/llb"
)

// indexBridgeScript is the in-step bridge from 127.0.0.1:PORT to the
// forwarded unix socket; see indexbridge.py.
//
//go:embed indexbridge.py
var indexBridgeScript []byte

const (
	// IndexBridgeDir is where WithIndexAccess mounts the bridge script,
	// read-only, inside the step. It is a leaf of its own: a read-only
	// mount at /sb would make runc fail to create other mounts under /sb
	// (/sb/in, /sb/out) with "read-only file system".
	IndexBridgeDir = "/sb/bridge"
	// IndexBridgeScript is the path of the bridge script inside the step.
	IndexBridgeScript = IndexBridgeDir + "/indexbridge.py"
	// IndexSocketTarget is where WithIndexAccess mounts the forwarded
	// index-proxy socket inside the step.
	IndexSocketTarget = "/run/skillbuild/index.sock"
	// ProxyPlaceholder is replaced, in every argument of the wrapped command,
	// by the bridge's proxy URL (http://127.0.0.1:<port>), e.g.
	// []string{"pip", "install", "--proxy", ProxyPlaceholder, ...}.
	ProxyPlaceholder = "{proxy}"
)

// IndexBridgeSource returns the bridge script that WithIndexAccess mounts
// into the step, for callers that run it elsewhere (tests on the host).
func IndexBridgeSource() []byte {
	return append([]byte(nil), indexBridgeScript...)
}

// IndexAccessOpt configures WithIndexAccess.
type IndexAccessOpt func(*indexAccess)

type indexAccess struct {
	python   string
	uid, gid int
	port     int
}

// WithBridgePython sets the interpreter that runs the bridge script inside
// the step (default "python3" from the image's PATH). Any Python >= 3.7 works;
// the script uses the standard library only.
func WithBridgePython(path string) IndexAccessOpt {
	return func(a *indexAccess) {
		if path != "" {
			a.python = path
		}
	}
}

// WithSocketOwner makes the forwarded socket owned by uid:gid (default 0:0,
// mode 0600). It must match the step's user, or the bridge's connects fail
// with EACCES.
func WithSocketOwner(uid, gid int) IndexAccessOpt {
	return func(a *indexAccess) {
		if uid >= 0 && gid >= 0 {
			a.uid, a.gid = uid, gid
		}
	}
}

// WithBridgePort makes the bridge listen on 127.0.0.1:port inside the step
// instead of a free port picked at run time (0, the default).
func WithBridgePort(port int) IndexAccessOpt {
	return func(a *indexAccess) {
		if port >= 0 && port <= 65535 {
			a.port = port
		}
	}
}

// WithIndexAccess wraps argv so that it runs with no network except an HTTP
// proxy that reaches the package index. It returns the argv to run and the
// run options to add to the step:
//
//   - llb.Network(llb.NetModeNone): the step has loopback only;
//   - the bridge script, from an llb.Scratch() file, mounted read-only at
//     IndexBridgeDir;
//   - llb.AddSSHSocket with id socketID at IndexSocketTarget, owned by the
//     step user (WithSocketOwner), mode 0600.
//
// The wrapped command sees ProxyPlaceholder in its arguments replaced by the
// proxy URL, and http_proxy/https_proxy (both cases) set to it, with no_proxy
// and all_proxy removed. The bridge exits with the command's exit code and
// never writes to stdout.
//
// The solve must attach the client side for socketID (build.IndexProxy's
// Attachable); without it BuildKit fails the step with `no SSH key
// "<socketID>" forwarded from the client`.
func WithIndexAccess(socketID string, argv []string, opts ...IndexAccessOpt) ([]string, []llb.RunOption) {
	a := indexAccess{python: "python3"}
	for _, o := range opts {
		o(&a)
	}
	script := llb.Scratch().File(
		llb.Mkfile("/indexbridge.py", 0o444, indexBridgeScript),
		llb.WithCustomName("skillbuild index bridge"),
	)
	wrapped := make([]string, 0, len(argv)+5)
	wrapped = append(wrapped, a.python, IndexBridgeScript, IndexSocketTarget, strconv.Itoa(a.port), "--")
	wrapped = append(wrapped, argv...)
	return wrapped, []llb.RunOption{
		llb.Network(llb.NetModeNone),
		llb.AddMount(IndexBridgeDir, script, llb.Readonly),
		llb.AddSSHSocket(llb.SSHID(socketID), llb.SSHSocketOpt(IndexSocketTarget, a.uid, a.gid, 0o600)),
	}
}
