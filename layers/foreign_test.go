package layers

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// foreignImage is a skill image as a registry would hand it over, made
// layer by layer so each case can change one thing.
type foreignImage struct {
	base, venv, lockLayer []byte
	dists                 [][]byte
	env                   []string
	user, workdir         string
	dropDiffID            bool
}

var baseEnv = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}

func reg(name, body string) tar.Header {
	return tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), Linkname: body}
}

func link(name, target string) tar.Header {
	return tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}
}

// layerWith is a gzipped layer whose regular files hold the text in their
// header's Linkname (reg puts it there).
func layerWith(t *testing.T, hs ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range hs {
		body := ""
		if h.Typeflag == tar.TypeReg {
			body, h.Linkname = h.Linkname, ""
			h.Size = int64(len(body))
		}
		require.NoError(t, tw.WriteHeader(&h))
		if body != "" {
			_, err := io.WriteString(tw, body)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return buf.Bytes()
}

const goodCfg = "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\nexecutable = /usr/bin/python3.11\ncommand = /usr/bin/python3 -m venv /opt/skill/venv\n"

func goodVenv(t *testing.T, extra ...tar.Header) []byte {
	hs := []tar.Header{dir("opt/"), dir("opt/skill/"), dir("opt/skill/venv/"), reg("opt/skill/venv/pyvenv.cfg", goodCfg),
		dir("opt/skill/venv/bin/"), reg("opt/skill/venv/bin/activate", "# sh"), link("opt/skill/venv/bin/python", "python3"),
		link("opt/skill/venv/bin/python3", "/usr/bin/python3"), link("opt/skill/venv/bin/python3.11", "python3"),
		dir("opt/skill/venv/include/"), dir("opt/skill/venv/include/python3.11/"), dir("opt/skill/venv/lib/"), dir("opt/skill/venv/lib/python3.11/"), dir(sitePackages),
		link("opt/skill/venv/lib64", "lib")}
	return layerWith(t, append(hs, extra...)...)
}

var aLock = lock.Lock{{Name: "a", Version: "1.0", SHA256: "aa"}, {Name: "b", Version: "2.0", SHA256: "bb"}}

func goodForeign(t *testing.T) foreignImage {
	return foreignImage{
		base:      layerWith(t, dir("usr/"), dir("usr/bin/"), reg("usr/bin/python3", "ELF")),
		venv:      goodVenv(t),
		dists:     [][]byte{distLayer(t, "a", "a.py"), layerWith(t, dir(sitePackages), dir(sitePackages+"b-2.0.dist-info/"), reg(sitePackages+"b.py", "b"))},
		lockLayer: layerWith(t, dir("opt/"), dir("opt/skill/"), reg("opt/skill/requirements.lock", aLock.Text())),
		env:       Env(baseEnv), user: User, workdir: WorkDir,
	}
}

// diffID is the digest of a gzipped layer's tar.
func diffID(t *testing.T, layer []byte) digest.Digest {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(layer))
	require.NoError(t, err)
	d, err := digest.FromReader(zr)
	require.NoError(t, err)
	return d
}

// write stores the image in cs and returns its manifest and the base as
// this host would trust it.
func (f foreignImage) write(t *testing.T, cs content.Store) (ocispec.Descriptor, Base) {
	t.Helper()
	put := func(b []byte, mt string) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
		require.NoError(t, content.WriteBlob(context.Background(), cs, d.Digest.String(), bytes.NewReader(b), d))
		return d
	}
	blobs := append(append([][]byte{f.base, f.venv}, f.dists...), f.lockLayer)
	var descs []ocispec.Descriptor
	var ids []digest.Digest
	for _, b := range blobs {
		descs = append(descs, put(b, ocispec.MediaTypeImageLayerGzip))
		ids = append(ids, diffID(t, b))
	}
	if f.dropDiffID {
		ids = ids[:len(ids)-1]
	}
	cfg, err := json.Marshal(ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: ids},
		Config: ocispec.ImageConfig{Env: f.env, User: f.user, WorkingDir: f.workdir}})
	require.NoError(t, err)
	m, err := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Layers: descs, Config: put(cfg, ocispec.MediaTypeImageConfig)})
	require.NoError(t, err)
	return put(m, ocispec.MediaTypeImageManifest), Base{Name: "localhost/base:1", DiffIDs: ids[:1], Env: baseEnv}
}

// TestCheckForeignAcceptsOnlyWhatABuildMakes: an image laid out as a
// skillbuild build lays it out passes, with its lock; each way of lying
// about what it holds, or of holding more, is refused as a failed
// precondition that says what differs.
func TestCheckForeignAcceptsOnlyWhatABuildMakes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cs, err := local.NewStore(t.TempDir())
	require.NoError(t, err)

	m, base := goodForeign(t).write(t, cs)
	got, err := CheckForeign(ctx, cs, m, []Base{{Name: "other", DiffIDs: []digest.Digest{digest.FromString("x")}}, base}, "")
	require.NoError(t, err)
	assert.Equal(t, base.Name, got.Base)
	assert.Equal(t, []string{"a==1.0", "b==2.0"}, []string{got.Lock[0].Name + "==" + got.Lock[0].Version, got.Lock[1].Name + "==" + got.Lock[1].Version})

	for _, tc := range []struct {
		name   string
		change func(*foreignImage)
		bases  func(Base) []Base
		want   string
	}{
		{"a base this host does not trust", nil, func(Base) []Base { return nil }, "not those of any base image of this host"},
		{"the system's site-packages", func(f *foreignImage) {
			f.venv = layerWith(t, dir("opt/"), dir("opt/skill/"), dir("opt/skill/venv/"), reg("opt/skill/venv/pyvenv.cfg", "home = /usr/bin\ninclude-system-site-packages = true\n"))
		}, nil, "include-system-site-packages"},
		{"a module in the venv's own layer", func(f *foreignImage) { f.venv = goodVenv(t, reg(sitePackages+"sitecustomize.py", "import os")) }, nil, "holds " + VenvDir},
		{"an interpreter link into the skill", func(f *foreignImage) {
			f.venv = goodVenv(t, link("opt/skill/venv/bin/python3.12", "/opt/skill/venv/lib/python3.11/site-packages/a.py"))
		}, nil, "not to the base's interpreter"},
		{"a pyvenv.cfg home inside the skill", func(f *foreignImage) {
			f.venv = layerWith(t, dir("opt/skill/venv/"), reg("opt/skill/venv/pyvenv.cfg", "home = /opt/skill/venv/bin\ninclude-system-site-packages = false\n"))
		}, nil, "home"},
		{"no venv config", func(f *foreignImage) { f.venv = layerWith(t, dir("opt/skill/venv/")) }, nil, "no pyvenv.cfg"},
		{"a file beside the lock", func(f *foreignImage) {
			f.lockLayer = layerWith(t, reg("opt/skill/requirements.lock", aLock.Text()), reg("etc/ld.so.preload", "/x.so"))
		}, nil, "besides the lock file"},
		{"no lock file", func(f *foreignImage) { f.lockLayer = layerWith(t, dir("opt/")) }, nil, "no lock file"},
		{"a locked distribution no layer holds", func(f *foreignImage) { f.dists = f.dists[:1] }, nil, "its lock names b 2.0, and no layer holds it"},
		{"a distribution the lock does not name", func(f *foreignImage) {
			f.dists[1] = layerWith(t, dir(sitePackages), dir(sitePackages+"b-2.0.dist-info/"), dir(sitePackages+"evil-6.6.dist-info/"))
		}, nil, "evil-6.6.dist-info"},
		{"a layer with no locked distribution", func(f *foreignImage) { f.dists = append(f.dists, layerWith(t, reg(sitePackages+"x.py", "x"))) }, nil, "holds no distribution of its lock"},
		{"a distribution writing outside the venv", func(f *foreignImage) {
			f.dists[0] = layerWith(t, dir(sitePackages+"a-1.0.dist-info/"), reg("usr/lib/python3.11/os.py", "evil"))
		}, nil, "outside the virtual environment"},
		{"a distribution replacing the venv's config", func(f *foreignImage) {
			f.dists[0] = layerWith(t, dir(sitePackages+"a-1.0.dist-info/"), reg("opt/skill/venv/pyvenv.cfg", "include-system-site-packages = true"))
		}, nil, "replaces " + VenvDir + "/pyvenv.cfg"},
		{"an environment of its own", func(f *foreignImage) { f.env = append(Env(baseEnv), "LD_PRELOAD=/opt/skill/venv/x.so") }, nil, "environment"},
		{"root as its user", func(f *foreignImage) { f.user = "0" }, nil, "its user"},
		{"config and manifest disagree", func(f *foreignImage) { f.dropDiffID = true }, nil, "layers and its config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := goodForeign(t)
			if tc.change != nil {
				tc.change(&f)
			}
			m, base := f.write(t, cs)
			bases := []Base{base}
			if tc.bases != nil {
				bases = tc.bases(base)
			}
			_, err := CheckForeign(ctx, cs, m, bases, "")
			require.Error(t, err)
			assert.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}
