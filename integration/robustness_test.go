package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInstallFailureLeavesGoodImageUntouched(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "steady", Version: "1.0"})
	good, r := install(t, srv, "steady", nil, "steady==1.0")
	require.Equal(t, 0, r.code, r.stderr)

	bad, r := install(t, srv, "steady", nil, "steady==1.0", "not-there")
	assert.Equal(t, 1, r.code)
	assert.False(t, bad.Success)

	img, err := suiteClient(t).ImageService().Get(context.Background(), fullName(t, "atom-skill:steady-v1"))
	require.NoError(t, err)
	assert.Equal(t, good.Digest, img.Target.Digest.String(), "the failed rebuild did not move the tag")
}

func TestInstallConcurrentBuildsOnOneRootWait(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "conc-a", Version: "1.0"}, pyindex.Wheel{Name: "conc-b", Version: "1.0"})
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i, pkg := range []string{"conc-a", "conc-b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = sb(t, "install", "--progress", "plain", "--base", env.base, "--index-url", srv.URL(), "concurrent-"+pkg, pkg)
		}()
	}
	wg.Wait()
	waited := 0
	for _, r := range results {
		assert.Equal(t, 0, r.code, r.stderr)
		if strings.Contains(r.stderr, "waiting for another skillbuild process") {
			waited++
		}
	}
	assert.Equal(t, 1, waited, "exactly one of the two waited for the other's lock")
	assert.True(t, imageExists(t, "atom-skill:concurrent-conc-a-v1"))
	assert.True(t, imageExists(t, "atom-skill:concurrent-conc-b-v1"))
}

func TestInstallBuildTimeout(t *testing.T) {
	srv, dir := index(t)
	_, err := pyindex.BuildSdist(dir, pyindex.Sdist{Name: "sleepy", Version: "1.0", Prelude: "import time\ntime.sleep(120)\n"})
	require.NoError(t, err)
	out, r := install(t, srv, "sleepy", []string{"--allow-sdist", "--build-timeout", "8s"}, "sleepy")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, out.Error, "build timeout of 8s")
	assert.Contains(t, out.Error, "--build-timeout")
	assert.False(t, imageExists(t, "atom-skill:sleepy-v1"))
}

func TestContainerdUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nothing.sock")
	cmd := exec.Command(env.bin, "--address", sock, "--root", t.TempDir(), "install", "--json", "--no-scan", "--base", env.base, "nodaemon")
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(interface{ ExitCode() int }); ok {
		code = ee.ExitCode()
	}
	assert.Equal(t, 75, code, "temporary failure: try again when containerd runs")
	assert.Contains(t, string(out), sock)
}

func TestBaseImport(t *testing.T) {
	t.Run("rootfs without python", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
		r := sb(t, "base", "import", "--rootfs", dir, "--name", "localhost/nopython:1")
		assert.Equal(t, 2, r.code)
		assert.Contains(t, r.stderr, "no python3")
		assert.Contains(t, r.stderr, "debootstrap")
		assert.False(t, imageExists(t, "localhost/nopython:1"))
	})
	t.Run("oci archive round trip", func(t *testing.T) {
		ctx := context.Background()
		c := suiteClient(t)
		img, err := c.ImageService().Get(ctx, fullName(t, env.base))
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "base.tar")
		f, err := os.Create(path)
		require.NoError(t, err)
		require.NoError(t, c.Export(ctx, f, archive.WithImage(c.ImageService(), img.Name), archive.WithPlatform(nil)))
		require.NoError(t, f.Close())

		r := sb(t, "base", "import", "--json", "--oci-archive", path, "--name", "localhost/reimported/python:1")
		require.Equal(t, 0, r.code, r.stderr)
		got, err := c.ImageService().Get(ctx, "localhost/reimported/python:1")
		require.NoError(t, err)
		assert.Equal(t, img.Target.Digest, got.Target.Digest)
		still, err := c.ImageService().Get(ctx, img.Name)
		require.NoError(t, err, "importing an archive of the base under another name keeps the base's own tag")
		assert.Equal(t, img.Target.Digest, still.Target.Digest)
		out, err := runIn(t, "localhost/reimported/python:1", "python3", "-c", "print('ok')")
		require.NoError(t, err)
		assert.Equal(t, "ok\n", out)

		// --name equal to the archive's own name: the one tag the import
		// makes is the one asked for, and it stays.
		own := filepath.Join(t.TempDir(), "own.tar")
		f, err = os.Create(own)
		require.NoError(t, err)
		require.NoError(t, c.Export(ctx, f, archive.WithImage(c.ImageService(), "localhost/reimported/python:1"), archive.WithPlatform(nil)))
		require.NoError(t, f.Close())
		require.NoError(t, c.ImageService().Delete(ctx, "localhost/reimported/python:1"))
		r = sb(t, "base", "import", "--json", "--oci-archive", own, "--name", "localhost/reimported/python:1")
		require.Equal(t, 0, r.code, r.stderr)
		got, err = c.ImageService().Get(ctx, "localhost/reimported/python:1")
		require.NoError(t, err, "the name the archive records and --name agree: the import keeps it")
		assert.Equal(t, img.Target.Digest, got.Target.Digest)
	})
}

// Ctrl-C or SIGTERM mid-build exits 130, tags nothing, and the process
// cleans up before it exits: no step container or process, staging
// image, mount, cgroup or temporary lease of its root is left.
func TestInstallInterruptedCleansUp(t *testing.T) {
	srv, dir := index(t)
	const nap = "293" // the step's process, recognisable by its argv
	_, err := pyindex.BuildSdist(dir, pyindex.Sdist{Name: "slowbuild", Version: "1.0", Prelude: "import subprocess\nsubprocess.run(['sleep', '" + nap + "'])\n"})
	require.NoError(t, err)
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := sbCmd("install", "--progress", "plain", "--allow-sdist", "--base", env.base, "--index-url", srv.URL(), "interrupted", "slowbuild")
			stderr := &syncBuffer{}
			cmd.Stderr = stderr
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { cmd.Process.Kill() }) //nolint:errcheck // no-op once it exited
			// Wait until the sdist's code runs in a build step, then signal.
			waitFor(t, stderr, "resolve requirements", 2*time.Minute)
			waitForProcess(t, stderr, "sleep", nap)
			require.NoError(t, cmd.Process.Signal(sig))
			err = cmd.Wait()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, stderr.String())
			assert.Equal(t, 130, ee.ExitCode(), stderr.String())
			assert.False(t, imageExists(t, "atom-skill:interrupted-v1"))
			assert.Empty(t, processesWithArgs("sleep", nap), "the step's process outlived the command")
			assertRootClean(t, env.root)
		})
	}
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
