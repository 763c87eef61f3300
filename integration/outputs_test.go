package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// indexNames are the image names (io.containerd.image.name) in an OCI
// layout's index.json.
func indexNames(t *testing.T, indexJSON []byte) []string {
	t.Helper()
	var idx ocispec.Index
	require.NoError(t, json.Unmarshal(indexJSON, &idx), "index.json: %s", indexJSON)
	var names []string
	for _, m := range idx.Manifests {
		names = append(names, m.Annotations["io.containerd.image.name"])
	}
	sort.Strings(names)
	return names
}

// archiveIndex reads index.json out of an OCI archive.
func archiveIndex(t *testing.T, file string) []byte {
	t.Helper()
	b, ok := archiveFiles(t, file)[ocispec.ImageIndexFile]
	require.True(t, ok, "%s has no index.json", file)
	return b
}

// Every builder treats an existing --output path alike: an archive
// replaces a file atomically, a layout gains the image beside the ones it
// has, and a path that would be clobbered (a directory as an archive, a
// directory of other things as a layout) is refused before building.
func TestOutputsTreatExistingPathsAlikeOnEveryBuilder(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "out-a", Version: "1.0"}, pyindex.Wheel{Name: "out-b", Version: "1.0"})
	d := startBuildkitd(t, false)
	builders := []struct {
		name   string
		global []string
	}{
		{"embedded", []string{"--root", newRoot(t)}},
		{"embedded-oci", []string{"--root", newRoot(t), "--address", noContainerd, "--builder", "embedded-oci", "--base-archive", baseArchive(t)}},
		{"remote", append([]string{"--root", newRoot(t), "--base-archive", baseArchive(t)}, d.BuilderFlags()...)},
	}
	for _, b := range builders {
		t.Run(b.name, func(t *testing.T) {
			dir := t.TempDir()
			file, layout := filepath.Join(dir, "skill.tar"), filepath.Join(dir, "layout")
			require.NoError(t, os.WriteFile(file, []byte("an older file"), 0o644))
			repo := "out-" + b.name
			outs := []string{"--repo", repo, "--output", "oci-archive=" + file, "--output", "oci-layout=" + layout}

			_, r := installOn(t, b.global, srv, "out-a", outs, "out-a==1.0")
			require.Equal(t, 0, r.code, r.stderr)
			nameA, nameB := "docker.io/library/"+repo+":out-a-v1", "docker.io/library/"+repo+":out-b-v1"
			assert.Equal(t, []string{nameA}, indexNames(t, archiveIndex(t, file)), "the file was replaced by the archive")

			_, r = installOn(t, b.global, srv, "out-b", outs, "out-b==1.0")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, []string{nameB}, indexNames(t, archiveIndex(t, file)), "the archive was replaced")
			idx, err := os.ReadFile(filepath.Join(layout, ocispec.ImageIndexFile))
			require.NoError(t, err)
			assert.Equal(t, []string{nameA, nameB}, indexNames(t, idx), "the layout holds both images")
			assert.FileExists(t, filepath.Join(layout, ocispec.ImageLayoutFile))

			// The same name again replaces its entry.
			_, r = installOn(t, b.global, srv, "out-b", []string{"--repo", repo, "--refresh", "--output", "oci-layout=" + layout}, "out-b==1.0")
			require.Equal(t, 0, r.code, r.stderr)
			idx, err = os.ReadFile(filepath.Join(layout, ocispec.ImageIndexFile))
			require.NoError(t, err)
			assert.Equal(t, []string{nameA, nameB}, indexNames(t, idx), "one entry per name")

			// Refused before building, nothing touched.
			other := filepath.Join(dir, "other")
			require.NoError(t, os.Mkdir(other, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644))
			for _, spec := range []string{"oci-archive=" + other, "oci-layout=" + other, "oci-layout=" + file} {
				res, r := installOn(t, b.global, srv, "out-c", []string{"--repo", repo, "--output", spec}, "out-a==1.0")
				assert.Equal(t, 2, r.code, "%s: %s", spec, r.stderr)
				assert.Contains(t, res.Error, strings.SplitN(spec, "=", 2)[1], spec)
				assert.Empty(t, res.Steps, "%s: nothing was built", spec)
			}
			entries, err := os.ReadDir(other)
			require.NoError(t, err)
			require.Len(t, entries, 1)
			assert.Equal(t, []string{nameB}, indexNames(t, archiveIndex(t, file)))

			left, err := os.ReadDir(dir)
			require.NoError(t, err)
			for _, e := range left {
				assert.Contains(t, []string{"skill.tar", "layout", "other"}, e.Name(), "no temporary file is left")
			}
		})
	}
}
