package layers

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/lock"
)

// Base is a base image this host trusts (imported or pulled as a base):
// its layers' diff IDs and its environment.
type Base struct {
	Name    string
	DiffIDs []digest.Digest
	Env     []string
}

// Foreign is what CheckForeign found an image to hold.
type Foreign struct {
	// Base is the trusted base its first layers are.
	Base string
	// Lock is the lock file of its last layer, which its distribution
	// layers hold exactly.
	Lock lock.Lock
}

// maxSmallBlob bounds the blobs CheckForeign reads whole (a manifest, a
// config, the venv's and the lock file's layers).
const maxSmallBlob = 4 << 20

// CheckForeign checks an image that came from elsewhere (a registry, an
// archive) against what every skill image is, reading its blobs only: its
// first layers are exactly those of one of bases; then comes the venv's
// layer, holding only what a venv made without pip holds (its
// interpreter links pointing out of the venv, include-system-site-packages
// false); then distribution layers, which together hold exactly the
// distributions its lock file names, each once, nothing outside the venv
// and nothing of the venv's (Check); and last the lock file alone. Its
// config's environment, user and working directory are a skill image's
// on that base. A refusal is an error of class FailedPrecondition saying
// what differs; cacheDir caches layer lists as List does.
func CheckForeign(ctx context.Context, cs content.Provider, manifest ocispec.Descriptor, bases []Base, cacheDir string) (Foreign, error) {
	var m ocispec.Manifest
	if err := readSmallJSON(ctx, cs, manifest, &m); err != nil {
		return Foreign{}, fmt.Errorf("image manifest %s: %w", manifest.Digest, err)
	}
	var cfg ocispec.Image
	if err := readSmallJSON(ctx, cs, m.Config, &cfg); err != nil {
		return Foreign{}, fmt.Errorf("image config %s: %w", m.Config.Digest, err)
	}
	diffIDs := cfg.RootFS.DiffIDs
	if len(diffIDs) != len(m.Layers) {
		return Foreign{}, refused("its manifest has %d layers and its config %d", len(m.Layers), len(diffIDs))
	}
	base, ok := baseOf(diffIDs, bases)
	if !ok {
		return Foreign{}, refused("its first layers are not those of any base image of this host (imported or pulled as a base): " +
			"pull or import the base it was built on as a base")
	}
	n := len(base.DiffIDs)
	if len(m.Layers) < n+2 {
		return Foreign{}, refused("it has %d layers above its base %s, not a venv's and a lock file's at least", len(m.Layers)-n, base.Name)
	}
	if err := checkConfig(cfg.Config, base); err != nil {
		return Foreign{}, err
	}
	locked, err := readLockLayer(ctx, cs, m.Layers[len(m.Layers)-1])
	if err != nil {
		return Foreign{}, err
	}
	venv := m.Layers[n]
	venvList, err := checkVenvLayer(ctx, cs, venv, cacheDir)
	if err != nil {
		return Foreign{}, err
	}
	dists := m.Layers[n+1 : len(m.Layers)-1]
	lists := make([][]byte, len(dists))
	for i, d := range dists {
		if lists[i], err = List(ctx, cs, d, cacheDir); err != nil {
			return Foreign{}, fmt.Errorf("list distribution layer %d (%s): %w", i+1, d.Digest, err)
		}
	}
	locks, err := groupByLayer(locked, lists)
	if err != nil {
		return Foreign{}, err
	}
	if err := Check(venvList, locks, lists); err != nil {
		return Foreign{}, fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
	}
	return Foreign{Base: base.Name, Lock: locked}, nil
}

// refused is a CheckForeign refusal.
func refused(format string, args ...any) error {
	return fmt.Errorf("not a skill image as built by skillbuild: "+format+": %w", append(args, errdefs.ErrFailedPrecondition)...)
}

// baseOf is the base whose diff IDs start the image's, the longest when
// several do.
func baseOf(diffIDs []digest.Digest, bases []Base) (Base, bool) {
	var best Base
	found := false
	for _, b := range bases {
		if len(b.DiffIDs) == 0 || len(b.DiffIDs) > len(diffIDs) || !slices.Equal(b.DiffIDs, diffIDs[:len(b.DiffIDs)]) {
			continue
		}
		if !found || len(b.DiffIDs) > len(best.DiffIDs) {
			best, found = b, true
		}
	}
	return best, found
}

// checkConfig compares what a run takes from the image config with what a
// skill image on base has.
func checkConfig(c ocispec.ImageConfig, base Base) error {
	if want := Env(base.Env); !slices.Equal(c.Env, want) {
		return refused("its environment %q is not a skill image's on %s (%q)", c.Env, base.Name, want)
	}
	if c.User != User {
		return refused("its user is %q, not %q", c.User, User)
	}
	if c.WorkingDir != WorkDir {
		return refused("its working directory is %q, not %q", c.WorkingDir, WorkDir)
	}
	return nil
}

// readLockLayer reads the lock file's layer: the lock file and its
// directories, nothing else.
func readLockLayer(ctx context.Context, cs content.Provider, desc ocispec.Descriptor) (lock.Lock, error) {
	var text []byte
	err := walkSmallLayer(ctx, cs, desc, func(h *tar.Header, r io.Reader) error {
		p := path.Clean("/" + h.Name)
		switch {
		case h.Typeflag == tar.TypeDir && (p == "/" || p == "/opt" || p == WorkDir):
		case h.Typeflag == tar.TypeReg && p == LockFile && text == nil:
			b, err := io.ReadAll(io.LimitReader(r, maxSmallBlob+1))
			if err != nil {
				return err
			}
			text = b
		default:
			return refused("its last layer holds %s besides the lock file", p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if text == nil {
		return nil, refused("its last layer holds no lock file %s", LockFile)
	}
	locked, err := lock.ParseText(string(text))
	if err != nil {
		return nil, refused("its lock file does not read: %v", err)
	}
	return locked, nil
}

// venvBin are the files a venv made without pip has in bin/, besides the
// interpreter's links.
var venvBin = []string{"activate", "activate.csh", "activate.fish", "Activate.ps1"}

// pyvenvKeys are the settings a venv's pyvenv.cfg may hold.
var pyvenvKeys = []string{"home", "include-system-site-packages", "version", "executable", "command"}

// checkVenvLayer checks the venv's layer holds only what a venv made
// without pip holds, and returns its list (List's format).
func checkVenvLayer(ctx context.Context, cs content.Provider, desc ocispec.Descriptor, cacheDir string) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return refused("its virtual environment's layer "+format, args...)
	}
	sawCfg := false
	err := walkSmallLayer(ctx, cs, desc, func(h *tar.Header, r io.Reader) error {
		p := path.Clean("/" + h.Name)
		rel, inVenv := strings.CutPrefix(p, VenvDir+"/")
		switch {
		case h.Typeflag == tar.TypeDir && (p == "/" || p == "/opt" || p == WorkDir || p == VenvDir):
		case !inVenv:
			return bad("writes %s, outside %s", p, VenvDir)
		case h.Typeflag == tar.TypeDir && (rel == "bin" || rel == "include" || rel == "lib" || isVenvLib(rel)):
		case h.Typeflag == tar.TypeReg && rel == "pyvenv.cfg":
			sawCfg = true
			return checkPyvenv(r, bad)
		case h.Typeflag == tar.TypeReg && strings.HasPrefix(rel, "bin/") && slices.Contains(venvBin, strings.TrimPrefix(rel, "bin/")):
		case h.Typeflag == tar.TypeSymlink && rel == "lib64" && h.Linkname == "lib":
		case h.Typeflag == tar.TypeSymlink && isPythonLink(rel):
			// The interpreter is the base's: a link to another link in
			// bin, or out of the skill's directory.
			t := h.Linkname
			inBin := !strings.Contains(t, "/") && isPythonLink("bin/"+t)
			outside := path.IsAbs(t) && !strings.HasPrefix(path.Clean(t)+"/", WorkDir+"/")
			if !inBin && !outside {
				return bad("links %s to %s, not to the base's interpreter", p, t)
			}
		default:
			return bad("holds %s, which a virtual environment made without pip does not", p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !sawCfg {
		return nil, bad("has no pyvenv.cfg")
	}
	return List(ctx, cs, desc, cacheDir)
}

// isVenvLib reports whether rel is one of the venv's own directories
// under lib/ or include/: pythonX.Y, and lib/pythonX.Y/site-packages.
func isVenvLib(rel string) bool {
	for _, pattern := range []string{"lib/python[0-9]*", "lib/python[0-9]*/site-packages", "include/python[0-9]*"} {
		if ok, _ := path.Match(pattern, rel); ok {
			return true
		}
	}
	return false
}

// isPythonLink reports whether rel names one of the venv's interpreter
// links (bin/python, bin/python3, bin/python3.11).
func isPythonLink(rel string) bool {
	name, ok := strings.CutPrefix(rel, "bin/")
	if !ok || !strings.HasPrefix(name, "python") {
		return false
	}
	return strings.Trim(strings.TrimPrefix(name, "python"), "0123456789.") == ""
}

// checkPyvenv reads a pyvenv.cfg: known settings only, the base's
// interpreter as home, and the system's site-packages left out.
func checkPyvenv(r io.Reader, bad func(string, ...any) error) error {
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
	seen := map[string]string{}
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !slices.Contains(pyvenvKeys, k) {
			return bad("pyvenv.cfg has %q", line)
		}
		seen[k] = v
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if seen["include-system-site-packages"] != "false" {
		return bad("pyvenv.cfg has include-system-site-packages = %q: the base's packages (never scanned) would be importable", seen["include-system-site-packages"])
	}
	if home := seen["home"]; !path.IsAbs(home) || strings.HasPrefix(path.Clean(home)+"/", WorkDir+"/") {
		return bad("pyvenv.cfg has home = %q, not the base's interpreter", home)
	}
	return nil
}

// groupByLayer is, for each distribution layer's list, the distributions
// of the lock whose dist-info it holds; a locked distribution must be in
// exactly one layer, and every layer must hold one.
func groupByLayer(locked lock.Lock, lists [][]byte) ([]lock.Lock, error) {
	byKey := map[string]lock.Dist{}
	for _, d := range locked {
		byKey[distInfoKey(d.Name, d.Version)] = d
	}
	where := map[string]int{}
	out := make([]lock.Lock, len(lists))
	for i, b := range lists {
		entries, err := ParseList(b)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.Type != "d" || !isTopDistInfo(e.Path) {
				continue
			}
			name, version, _ := strings.Cut(strings.TrimSuffix(path.Base(e.Path), ".dist-info"), "-")
			k := distInfoKey(name, version)
			d, ok := byKey[k]
			if !ok {
				continue // Check names it: the layer holds what its lock entries do not
			}
			if prev, dup := where[k]; dup && prev != i {
				return nil, refused("layers %d and %d both hold %s %s", prev+1, i+1, d.Name, d.Version)
			}
			if _, dup := where[k]; !dup {
				where[k] = i
				out[i] = append(out[i], d)
			}
		}
		if len(out[i]) == 0 {
			return nil, refused("distribution layer %d holds no distribution of its lock", i+1)
		}
	}
	for k, d := range byKey {
		if _, ok := where[k]; !ok {
			return nil, refused("its lock names %s %s, and no layer holds it", d.Name, d.Version)
		}
	}
	return out, nil
}

// readSmallJSON reads a JSON blob of at most maxSmallBlob bytes.
func readSmallJSON(ctx context.Context, cs content.Provider, desc ocispec.Descriptor, v any) error {
	if desc.Size > maxSmallBlob {
		return refused("%s claims %d bytes, more than %d", desc.Digest, desc.Size, maxSmallBlob)
	}
	b, err := content.ReadBlob(ctx, cs, desc)
	if err != nil {
		return err
	}
	if digest.FromBytes(b) != desc.Digest {
		return refused("%s does not match its digest", desc.Digest)
	}
	return json.Unmarshal(b, v)
}

// walkSmallLayer calls fn for each entry of a layer blob of at most
// maxSmallBlob bytes (compressed), verified against its digest.
func walkSmallLayer(ctx context.Context, cs content.Provider, desc ocispec.Descriptor, fn func(*tar.Header, io.Reader) error) error {
	if desc.Size > maxSmallBlob {
		return refused("layer %s claims %d bytes, more than %d", desc.Digest, desc.Size, maxSmallBlob)
	}
	b, err := content.ReadBlob(ctx, cs, desc)
	if err != nil {
		return err
	}
	if digest.FromBytes(b) != desc.Digest {
		return refused("layer %s does not match its digest", desc.Digest)
	}
	ds, err := decompress(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		return err
	}
	defer ds.Close()
	tr := tar.NewReader(ds)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(h, tr); err != nil {
			return err
		}
	}
}
