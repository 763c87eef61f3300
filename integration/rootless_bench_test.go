package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/internal/pyindex"
)

// BenchmarkRootlessVsRoot compares the same work as root (the suite's
// private containerd) and as an ordinary user (rootless containerd inside
// RootlessKit): a cold build of a 10-distribution skill (fresh --root:
// empty BuildKit cache), the same build cached, and `skillbuild run` of
// print(1) (process start to exit). Root and rootless alternate, run by
// run, so drift on a shared machine hits both alike. Run it with
//
//	go test ./integration -run '^$' -bench RootlessVsRoot -benchtime 1x
//
// SKILLBUILD_BENCH_REPS sets the build repetitions (default 5); runs are
// 4× that. Rootless runs are measured both without cgroups (rlimits,
// --require-limits=false) and with a delegated cgroup subtree.
func BenchmarkRootlessVsRoot(b *testing.B) {
	reps := 5
	if v := os.Getenv("SKILLBUILD_BENCH_REPS"); v != "" {
		fmt.Sscan(v, &reps) //nolint:errcheck
	}
	u := newRootlessUser(b)
	archive := filepath.Join(u.dir, "base.tar")
	if out, err := exec.Command("ctr", "--address", env.socket, "--namespace", namespace, "images", "export", archive, env.base).CombinedOutput(); err != nil {
		b.Fatalf("ctr export: %v: %s", err, out)
	}
	os.Chmod(archive, 0o644) //nolint:errcheck
	db := filepath.Join(u.dir, "osv.zip")
	copyFile(b, filepath.Join("..", "scan", "testdata", "PyPI-pypa-20241010.zip"), db, 0o644)

	dir := b.TempDir()
	if _, err := pyindex.CopyDebianWheels(dir); err != nil {
		b.Fatal(err)
	}
	var reqs []string
	for i := range 10 {
		name := fmt.Sprintf("rlbench-%02d", i)
		if _, err := pyindex.BuildWheel(dir, pyindex.Wheel{Name: name, Version: "1.0"}); err != nil {
			b.Fatal(err)
		}
		reqs = append(reqs, name+"==1.0")
	}
	srv, err := pyindex.Serve(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })

	must := func(r result, what string) {
		if r.code != 0 {
			b.Fatalf("%s: exit %d: %s", what, r.code, tailString(r.stderr, 2000))
		}
	}
	must(u.sb(b, "rootless", "start"), "rootless start")
	must(u.sb(b, "base", "import", "--oci-archive", archive), "base import")

	rootSb := func(root string, args ...string) result {
		cmd := exec.Command(env.bin, append([]string{"--address", env.socket, "--namespace", namespace, "--root", root}, args...)...)
		cmd.Env = cleanEnv()
		return runCmd(b, cmd, "[root] ", args)
	}
	installArgs := func(id string) []string {
		return append([]string{"install", "--progress", "quiet", "--base", env.base, "--index-url", srv.URL(), id}, reqs...)
	}
	timed := func(f func() result, what string) time.Duration {
		t0 := time.Now()
		must(f(), what)
		return time.Since(t0)
	}

	var rootCold, rlCold, rootCached, rlCached []time.Duration
	b.ResetTimer()
	for i := range reps {
		rootRoot := filepath.Join(env.dir, fmt.Sprintf("bench-root-%d", i))
		rlRoot := filepath.Join(u.home, fmt.Sprintf("r%d", i))
		must(rootSb(rootRoot, "db", "import", db), "db import")
		must(u.sb(b, "--root", rlRoot, "db", "import", db), "db import")
		id := fmt.Sprintf("bench%d", i)
		rootCold = append(rootCold, timed(func() result { return rootSb(rootRoot, installArgs(id)...) }, "root cold build"))
		rlCold = append(rlCold, timed(func() result { return u.sb(b, append([]string{"--root", rlRoot}, installArgs(id)...)...) }, "rootless cold build"))
		rootCached = append(rootCached, timed(func() result { return rootSb(rootRoot, installArgs(id)...) }, "root cached build"))
		rlCached = append(rlCached, timed(func() result { return u.sb(b, append([]string{"--root", rlRoot}, installArgs(id)...)...) }, "rootless cached build"))
	}
	var rootRun, rlRun, rlRunCg []time.Duration
	runArgs := []string{"run", "-c", "print(1)", "bench0"}
	rootRoot := filepath.Join(env.dir, "bench-root-0")
	rlRoot := filepath.Join(u.home, "r0")
	for range 4 * reps {
		rootRun = append(rootRun, timed(func() result { return rootSb(rootRoot, runArgs...) }, "root run"))
		rlRun = append(rlRun, timed(func() result {
			return u.sb(b, append([]string{"--root", rlRoot, "run", "--require-limits=false"}, runArgs[1:]...)...)
		}, "rootless run (rlimits)"))
	}
	must(u.asRoot(b, "rootless", "setup", "--user", u.name), "delegate cgroups")
	for range 4 * reps {
		rlRunCg = append(rlRunCg, timed(func() result { return u.sb(b, append([]string{"--root", rlRoot}, runArgs...)...) }, "rootless run (cgroups)"))
	}
	b.StopTimer()

	p50 := func(ds []time.Duration) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[(len(s)-1)/2].Microseconds()) / 1000
	}
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{
		{"root-cold-ms", rootCold}, {"rootless-cold-ms", rlCold},
		{"root-cached-ms", rootCached}, {"rootless-cached-ms", rlCached},
		{"root-run-p50-ms", rootRun}, {"rootless-run-p50-ms", rlRun}, {"rootless-cgroup-run-p50-ms", rlRunCg},
	} {
		b.ReportMetric(p50(m.ds), m.name)
		b.Logf("%-28s p50 %7.0f ms  min %7.0f  max %7.0f  (n=%d)", m.name, p50(m.ds),
			float64(slices.Min(m.ds).Microseconds())/1000, float64(slices.Max(m.ds).Microseconds())/1000, len(m.ds))
	}
}
