package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// batchedLog is what the embedded engine writes in the log of an install
// step it ran in one container with others.
const batchedLog = "installed in one container with"

// coalesceWheels are distributions with every kind of file the installer
// writes: packages (byte-compiled), console scripts, '#!python' scripts,
// data and headers.
func coalesceWheels(prefix string) []pyindex.Wheel {
	var ws []pyindex.Wheel
	var reqs []string
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		name := prefix + "-" + n
		reqs = append(reqs, name)
		mod := strings.ReplaceAll(name, "-", "_")
		ws = append(ws, pyindex.Wheel{Name: name, Version: "1.0",
			ConsoleScripts: map[string]string{name: mod + ":main"},
			Files: map[string]string{
				mod + "/sub/mod.py":                             "def f():\n    raise ValueError\n",
				mod + "-1.0.data/scripts/" + name + "-tool":     "#!python\nprint('hi')\n",
				mod + "-1.0.data/data/share/" + name + "/x.txt": "x\n",
				mod + "-1.0.data/headers/" + name + ".h":        "int x;\n",
			}})
	}
	return append(ws, pyindex.Wheel{Name: prefix, Version: "1.0", Requires: reqs})
}

// TestBuildCoalescedInstallsGiveTheSameLayers: the embedded engine runs
// install steps that start together as one container; each step's layer
// is byte for byte the one the step makes alone (the embedded-oci
// builder runs every step in its own container).
func TestBuildCoalescedInstallsGiveTheSameLayers(t *testing.T) {
	srv, _ := index(t, coalesceWheels("coal")...)
	emb, r := install(t, srv, "coalesced", nil, "coal==1.0")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, batchedLog, "the install steps ran together")
	want := layers(t, emb.ImageTag)
	require.GreaterOrEqual(t, len(want), 8, "base, venv, six distributions, ...")

	archiveFile := filepath.Join(t.TempDir(), "coalesced.tar")
	ociRoot := newRoot(t)
	_, r = installOn(t, []string{"--root", ociRoot, "--address", noContainerd, "--builder", "embedded-oci", "--base-archive", baseArchive(t)},
		srv, "coalesced", []string{"--output", "oci-archive=" + archiveFile}, "coal==1.0")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stderr, batchedLog, "embedded-oci runs one container per step")
	assert.Equal(t, want, archiveLayers(t, archiveFile), "the layers of steps run one by one")
	assertNoEngineLeftovers(t, ociRoot)

	out, err := runIn(t, emb.ImageTag, "/opt/skill/venv/bin/coal-a-tool")
	require.NoError(t, err)
	assert.Equal(t, "hi\n", out)
}

// TestBuildCoalescedBadWheelFailsOnlyItsStep: an unsafe wheel installed
// together with good ones fails its own step, with the message that names
// it; the others install.
func TestBuildCoalescedBadWheelFailsOnlyItsStep(t *testing.T) {
	ws := coalesceWheels("coalbad")
	bad := pyindex.Wheel{Name: "coalbad-evil", Version: "1.0",
		RawEntryPoints: "[console_scripts]\n/etc/skillbuild-hostile = coalbad_evil:main\n"}
	ws[len(ws)-1].Requires = append(ws[len(ws)-1].Requires, bad.Name)
	srv, _ := index(t, append(ws, bad)...)
	out, r := install(t, srv, "coalesced-bad", nil, "coalbad==1.0")
	refused(t, out, r, "atom-skill:coalesced-bad-v1", "refused an unsafe wheel", "coalbad-evil 1.0", "unsafe console script name '/etc/skillbuild-hostile'")
	assert.Contains(t, r.stderr, batchedLog, "the good steps ran together with the bad one")
}

// archiveImageLayers reads the layer digests of the image in an OCI
// archive whose index.json may point at an image index (the image and its
// attestations) rather than at the image's manifest.
func archiveImageLayers(t *testing.T, file string) []string {
	t.Helper()
	files := archiveFiles(t, file)
	blob := func(d digest.Digest) []byte {
		b, ok := files["blobs/sha256/"+d.Encoded()]
		require.True(t, ok, "%s not in %s", d, file)
		return b
	}
	var idx ocispec.Index
	require.NoError(t, json.Unmarshal(files["index.json"], &idx))
	require.Len(t, idx.Manifests, 1)
	desc := idx.Manifests[0]
	if desc.MediaType == ocispec.MediaTypeImageIndex {
		require.NoError(t, json.Unmarshal(blob(desc.Digest), &idx))
		for _, m := range idx.Manifests {
			if m.Platform == nil || m.Platform.OS != "unknown" {
				desc = m
				break
			}
		}
	}
	var m ocispec.Manifest
	require.NoError(t, json.Unmarshal(blob(desc.Digest), &m))
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	require.NotEmpty(t, out, "layers of %s", file)
	return out
}
