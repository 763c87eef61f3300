package store

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// headerOnly is a tar stream of one entry whose header claims size bytes
// and whose content is missing: reading the content fails. A check that
// refuses the entry by its header never gets there.
func headerOnly(t *testing.T, name string, size int64) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size}))
	return &buf // no content, no end: a truncated stream
}

func TestCheckArchiveRefusesLargeIndexFilesByTheirHeader(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		size int64
		want string
	}{
		{"index.json", 300 << 20, "the archive's index.json is 314572800 bytes, more than the 4194304 an import reads"},
		{"./index.json", MaxManifestSize + 1, "the archive's index.json is 4194305 bytes"},
		{"manifest.json", 1 << 40, "the archive's manifest.json is 1099511627776 bytes"},
		{"oci-layout", 1 << 20, "the archive's oci-layout is 1048576 bytes"},
		{"0123abcd.json", 300 << 20, "the archive's 0123abcd.json is 314572800 bytes"},
		{"0123abcd/json", 300 << 20, "the archive's 0123abcd/json is 314572800 bytes"},
	} {
		err := checkArchive(headerOnly(t, tt.name, tt.size), io.Discard)
		assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, tt.name)
		assert.ErrorContains(t, err, tt.want, tt.name)
	}

	// Anything else passes through unchanged, a large blob included.
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for name, body := range map[string]string{"oci-layout": `{"imageLayoutVersion":"1.0.0"}`, "index.json": "{}", "blobs/sha256/x": strings.Repeat("x", MaxManifestSize+1), "0123abcd/layer.tar": strings.Repeat("y", MaxManifestSize+1)} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}))
		_, err := tw.Write([]byte(body))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	var out bytes.Buffer
	require.NoError(t, checkArchive(bytes.NewReader(in.Bytes()), &out))
	tr := tar.NewReader(&out)
	n := 0
	for {
		_, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		n++
	}
	assert.Equal(t, 4, n)
}

func TestArchiveName(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		annotations map[string]string
		want        string
	}{
		{map[string]string{images.AnnotationImageName: "docker.io/library/atom-skill:x-v1", ocispec.AnnotationRefName: "x-v1"}, "docker.io/library/atom-skill:x-v1"},
		{map[string]string{images.AnnotationImageName: "python"}, "docker.io/library/python:latest"},
		{map[string]string{ocispec.AnnotationRefName: "localhost/a/b:1"}, "localhost/a/b:1"},
		{map[string]string{ocispec.AnnotationRefName: "latest"}, ""},
		{map[string]string{images.AnnotationImageName: "NOT A NAME"}, ""},
		{nil, ""},
	} {
		assert.Equal(t, tt.want, archiveName(tt.annotations), "%v", tt.annotations)
	}
}

// memLabels is a content label store in memory.
type memLabels struct {
	mu sync.Mutex
	m  map[digest.Digest]map[string]string
}

func (s *memLabels) Get(d digest.Digest) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, v := range s.m[d] {
		out[k] = v
	}
	return out, nil
}

func (s *memLabels) Set(d digest.Digest, l map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[d] = l
	return nil
}

func (s *memLabels) Update(d digest.Digest, l map[string]string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[d] == nil {
		s.m[d] = map[string]string{}
	}
	for k, v := range l {
		if v == "" {
			delete(s.m[d], k)
		} else {
			s.m[d][k] = v
		}
	}
	return s.m[d], nil
}

// blobs is a content store for walker tests.
type blobs struct {
	t  *testing.T
	cs content.Store
}

func newBlobs(t *testing.T) blobs {
	cs, err := local.NewLabeledStore(t.TempDir(), &memLabels{m: map[digest.Digest]map[string]string{}})
	require.NoError(t, err)
	return blobs{t: t, cs: cs}
}

// put stores b and returns its descriptor (not stored when absent).
func (s blobs) put(mt string, b []byte, absent bool) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if !absent {
		require.NoError(s.t, content.WriteBlob(context.Background(), s.cs, d.Digest.String(), bytes.NewReader(b), d))
	}
	return d
}

func (s blobs) json(mt string, v any, absent bool) ocispec.Descriptor {
	b, err := json.Marshal(v)
	require.NoError(s.t, err)
	return s.put(mt, b, absent)
}

// image stores a manifest (config and one layer) and an index holding it
// and an attestation manifest for it, stored unless attestationAbsent.
func (s blobs) image(attestationAbsent bool, edit func(*ocispec.Manifest)) (index, manifest, attestation ocispec.Descriptor) {
	cfg := s.json(ocispec.MediaTypeImageConfig, ocispec.Image{Platform: platforms.DefaultSpec()}, false)
	layer := s.put(ocispec.MediaTypeImageLayerGzip, []byte("layer"), false)
	mf := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{layer}}
	mf.SchemaVersion = 2
	if edit != nil {
		edit(&mf)
	}
	p := platforms.DefaultSpec()
	manifest = s.json(ocispec.MediaTypeImageManifest, mf, false)
	manifest.Platform = &p
	st := s.put("application/vnd.in-toto+json", []byte(`{"_type":"x"}`), attestationAbsent)
	att := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: s.json(ocispec.MediaTypeImageConfig, map[string]any{}, attestationAbsent), Layers: []ocispec.Descriptor{st}}
	att.SchemaVersion = 2
	attestation = s.json(ocispec.MediaTypeImageManifest, att, attestationAbsent)
	attestation.Platform = &ocispec.Platform{OS: "unknown", Architecture: "unknown"}
	attestation.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": manifest.Digest.String()}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{manifest, attestation}}
	idx.SchemaVersion = 2
	return s.json(ocispec.MediaTypeImageIndex, idx, false), manifest, attestation
}

// TestWalkerLoadsWithoutMissingAttestations: an image whose attestation
// manifests the archive lacks (a single-platform export) is complete
// without them, and they are recorded; one that has them is walked into
// them. Each index and manifest is labelled with its children, so a name
// keeps them all.
func TestWalkerLoadsWithoutMissingAttestations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newBlobs(t)
	matcher := withAttestations{platforms.Default()}

	index, manifest, attestation := s.image(true, nil)
	w := walker{cs: s.cs, matcher: matcher}
	require.NoError(t, w.walk(ctx, index, 0))
	assert.Equal(t, []digest.Digest{attestation.Digest}, w.missing)
	info, err := s.cs.Info(ctx, index.Digest)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"containerd.io/gc.ref.content.m.0": manifest.Digest.String()}, info.Labels)
	info, err = s.cs.Info(ctx, manifest.Digest)
	require.NoError(t, err)
	assert.Len(t, info.Labels, 2, "config and layer: %v", info.Labels)

	index, _, _ = s.image(false, nil)
	w = walker{cs: s.cs, matcher: matcher}
	require.NoError(t, w.walk(ctx, index, 0))
	assert.Empty(t, w.missing)
	info, err = s.cs.Info(ctx, index.Digest)
	require.NoError(t, err)
	assert.Len(t, info.Labels, 2, "the manifest and its attestation: %v", info.Labels)
}

// TestWalkerRefusesLyingDescriptors: sizes are checked before anything is
// allocated or read, and content an image needs must be there.
func TestWalkerRefusesLyingDescriptors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newBlobs(t)
	matcher := withAttestations{platforms.Default()}
	walk := func(d ocispec.Descriptor) error {
		w := walker{cs: s.cs, matcher: matcher}
		return w.walk(ctx, d, 0)
	}

	_, manifest, _ := s.image(false, nil)
	huge := manifest
	huge.Size = 1 << 62
	err := walk(huge)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	assert.ErrorContains(t, err, "claims 4611686018427387904 bytes, more than the 4194304 an import reads")

	small := manifest
	small.Size = 10
	assert.ErrorContains(t, walk(small), "claims 10 bytes, the archive's blob has")

	_, manifest, _ = s.image(false, func(m *ocispec.Manifest) { m.Layers[0].Size = 1 << 62 })
	assert.ErrorContains(t, walk(manifest), "claims 4611686018427387904 bytes, the archive's blob has 5")

	_, manifest, _ = s.image(false, func(m *ocispec.Manifest) { m.Config.Size = MaxManifestSize + 1 })
	assert.ErrorContains(t, walk(manifest), "claims 4194305 bytes, more than the 4194304")

	_, manifest, _ = s.image(false, func(m *ocispec.Manifest) { m.Layers[0].Digest = digest.FromString("elsewhere") })
	err = walk(manifest)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	assert.ErrorContains(t, err, "the archive lacks "+ocispec.MediaTypeImageLayerGzip+" "+digest.FromString("elsewhere").String())

	// A missing platform manifest is no attestation: refused.
	p := platforms.DefaultSpec()
	gone := s.put(ocispec.MediaTypeImageManifest, []byte(`{"schemaVersion":2}`), true)
	gone.Platform = &p
	idx := s.json(ocispec.MediaTypeImageIndex, ocispec.Index{Manifests: []ocispec.Descriptor{gone}}, false)
	assert.ErrorContains(t, walk(idx), "the archive lacks "+ocispec.MediaTypeImageManifest)

	// Indexes nesting without end are refused.
	inner := s.json(ocispec.MediaTypeImageIndex, ocispec.Index{}, false)
	for range maxIndexDepth + 1 {
		inner = s.json(ocispec.MediaTypeImageIndex, ocispec.Index{Manifests: []ocispec.Descriptor{inner}}, false)
	}
	assert.ErrorContains(t, walk(inner), "nest deeper than 4")

	assert.ErrorContains(t, walk(s.put("text/plain", []byte("x"), false)), "neither an image index nor a manifest")
}

// tarOf is a tar stream of files, in order (name, content, name, ...).
func tarOf(t *testing.T, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i < len(files); i += 2 {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: files[i], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[i+1]))}))
		_, err := tw.Write([]byte(files[i+1]))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// TestIngestDockerSave reads a docker save archive (no OCI layout): the
// index made of its manifest.json names the image, and the image is
// complete.
func TestIngestDockerSave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newBlobs(t)
	var layer bytes.Buffer
	ltw := tar.NewWriter(&layer)
	require.NoError(t, ltw.WriteHeader(&tar.Header{Name: "hello", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2}))
	_, err := ltw.Write([]byte("hi"))
	require.NoError(t, err)
	require.NoError(t, ltw.Close())
	cfg, err := json.Marshal(ocispec.Image{Platform: platforms.DefaultSpec(), RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layer.Bytes())}}})
	require.NoError(t, err)
	archive := tarOf(t,
		"abc.json", string(cfg),
		"abc/layer.tar", layer.String(),
		"manifest.json", `[{"Config":"abc.json","RepoTags":["localhost/saved:1"],"Layers":["abc/layer.tar"]}]`)

	index, err := ingest(ctx, s.cs, bytes.NewReader(archive))
	require.NoError(t, err)
	idx, err := readIndex(ctx, s.cs, index)
	require.NoError(t, err)
	require.Len(t, idx.Manifests, 1)
	m := idx.Manifests[0]
	assert.Equal(t, "localhost/saved:1", archiveName(m.Annotations))
	w := walker{cs: s.cs, matcher: withAttestations{platforms.Default()}}
	require.NoError(t, w.walk(ctx, m, 0))
}

// TestIngestRefusesAHugeIndexUnread: a 300 MiB index.json is refused by
// its header; the stream past it is never read (here it is cut short, and
// that is not the error).
func TestIngestRefusesAHugeIndexUnread(t *testing.T) {
	t.Parallel()
	s := newBlobs(t)
	stream := io.MultiReader(bytes.NewReader(tarOf(t, "oci-layout", `{"imageLayoutVersion":"1.0.0"}`)[:1024]), headerOnly(t, "index.json", 300<<20))
	_, err := ingest(context.Background(), s.cs, stream)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	assert.ErrorContains(t, err, "the archive's index.json is 314572800 bytes")
}
