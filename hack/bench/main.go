// Command bench measures skillbuild side by side with the tools a user would
// otherwise reach for, on the same machine and in the same run, and writes
// the tables, the targets and the profiles of the rows that miss them to
// BENCHMARKS.md.
//
//	go run ./hack/bench -bin bin/skillbuild -rootfs /var/cache/skillbuild/rootfs-bookworm -out BENCHMARKS.md
//
// It sets up everything it needs under a fresh directory in /tmp: a private
// containerd (own root, state and socket), skillbuild state roots, a
// buildah/podman storage, a local PEP 503 index of generated wheels, and the
// Debian python base imported into containerd and into buildah/podman
// storage. buildah and podman are installed with apt-get when missing. It
// warms every tool up once, runs each row -runs times (at least 5) and
// reports median, min and max and the ratio to skillbuild. It never asserts
// on time: a row that fails is reported as failed, the rest still runs.
//
// Every process it starts gets an explicit environment (PATH, HOME, LANG):
// the host's PIP_* and proxy variables never leak into a measurement.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// onlyRemote measures the run --host rows alone.
var onlyRemote = flag.Bool("only-remote", false, "measure only print(1) by `skillbuild run --host` against a warm server beside `skillbuild run` and ctr run --rm (-latency-runs each, interleaved); prints the rows, writes nothing")

// remoteOnly measures and prints the run --host rows.
func (b *bench) remoteOnly(ctx context.Context, stdout io.Writer) error {
	root, err := b.newRoot(ctx, "")
	if err != nil {
		return err
	}
	rep := &serveReport{}
	if err := b.measureRemote(ctx, root, rep); err != nil {
		return err
	}
	fmt.Fprint(stdout, rep.remoteMarkdown())
	return nil
}

// options are the command-line flags.
type options struct {
	bin         string
	rootfs      string
	out         string
	db          string
	dir         string
	runs        int
	runLatency  int
	concurrency int
	keep        bool
	skip30      bool
	skipBuildah bool
	buildah30   bool
	single      string
	only30      bool
	noSingle    bool
	withSingle  bool
	appendOut   bool
	noProfile   bool
	serve       bool
	onlyServe   bool
	soakRuns    int
	rows        string
	buildsOnly  bool
	compareBin  string
	noSeedHost  bool
	profileAll  bool
	noRegistry  bool
	onlyReg     bool
	rootless    bool
	onlyRL      bool
	floors      bool
	onlyFloors  bool
	onlyRuns    bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/skillbuild", "skillbuild binary to measure")
	flag.StringVar(&o.rootfs, "rootfs", "/var/cache/skillbuild/rootfs-bookworm", "Debian python base rootfs (make base-rootfs)")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "write the report here (empty: stdout only)")
	flag.StringVar(&o.db, "db", "scan/testdata/PyPI-pypa-20241010.zip", "OSV PyPI export the scans run against")
	flag.StringVar(&o.dir, "dir", "", "work directory (default: a new /tmp/sb-bench-*; removed at the end unless -keep)")
	flag.IntVar(&o.runs, "runs", 5, "timed runs per row (5 for a report; 3 for make bench-quick)")
	flag.IntVar(&o.runLatency, "latency-runs", 50, "runs for the print(1) latency percentiles")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent runs for the throughput row")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory and the private containerd's data")
	flag.BoolVar(&o.skip30, "skip-30", false, "skip the 30-distribution rows")
	flag.BoolVar(&o.buildah30, "buildah-30", false, "also measure buildah in the 30-distribution rows")
	flag.StringVar(&o.single, "single-layer-bin", "", "also measure this skillbuild binary (e.g. one built from before per-distribution layers) in the 30-distribution rows")
	flag.BoolVar(&o.withSingle, "single-layer", false, "also measure the single-layer pipeline (`install --single-layer` of -bin) in the 30-distribution rows")
	flag.BoolVar(&o.noSingle, "no-single-layer", false, "leave out the single-layer column (the default; kept for old command lines)")
	flag.BoolVar(&o.only30, "only-30", false, "measure only the 30-distribution rows (no 10/20-distribution table, run table or scan)")
	flag.BoolVar(&o.appendOut, "append", false, "append the report to -out instead of replacing it")
	flag.BoolVar(&o.skipBuildah, "skip-buildah", false, "skip the buildah and podman columns")
	flag.BoolVar(&o.noProfile, "no-profile", false, "skip profiling the rows that miss their target")
	flag.BoolVar(&o.serve, "serve", true, "measure serve: warm runs and 16 clients beside ctr run --rm, preload, soak")
	flag.BoolVar(&o.onlyServe, "only-serve", false, "measure only the serve section")
	flag.IntVar(&o.soakRuns, "soak-runs", 1000, "runs of the serve soak")
	flag.StringVar(&o.rows, "rows", "", "measure only these build rows, comma-separated: "+strings.Join(rowKeys, ","))
	flag.BoolVar(&o.buildsOnly, "builds-only", false, "measure only the build tables (no run table, no scans)")
	flag.BoolVar(&o.profileAll, "profile-all", false, "profile every build row that has a target, met or not")
	flag.BoolVar(&o.noSeedHost, "no-seed-host", false, "leave out the seed-style host column (venv with ensurepip)")
	flag.StringVar(&o.compareBin, "compare-bin", "", "also measure this skillbuild binary in every build row and the serve burst rows (e.g. one built from main, for before/after in one run)")
	flag.BoolVar(&o.noRegistry, "no-registry", false, "skip the registry rows (push, buildah push, --cache-from)")
	flag.BoolVar(&o.onlyReg, "only-registry", false, "measure only the registry rows (use with -append)")
	flag.BoolVar(&o.rootless, "rootless", true, "measure root against rootless (a user made for the bench; see rootless.go)")
	flag.BoolVar(&o.onlyRL, "only-rootless", false, "measure only the rootless rows (with -append, add them to -out)")
	flag.BoolVar(&o.floors, "floors", true, "measure the floors of one container per run (bare runc, in-process containerd client, ctr, skillbuild run, serve; see floors.go)")
	flag.BoolVar(&o.onlyFloors, "only-floors", false, "measure only the floors section")
	flag.BoolVar(&o.onlyRuns, "only-runs", false, "measure only the run table and (unless -floors=false) the floors section")
	flag.Parse()
	if o.runs < 1 || o.runLatency < 2 || o.concurrency < 1 {
		fmt.Fprintln(os.Stderr, "bench: -runs, -latency-runs and -concurrency must be positive (latency-runs at least 2)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	if *scanOnly {
		return runScanOnly(ctx, o, stdout)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("the benchmark drives containerd, runc, buildah and podman and must run as root")
	}
	var err error
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	if o.db, err = filepath.Abs(o.db); err != nil {
		return err
	}
	if o.single != "" {
		if o.single, err = filepath.Abs(o.single); err != nil {
			return err
		}
	}
	if o.compareBin != "" {
		if o.compareBin, err = filepath.Abs(o.compareBin); err != nil {
			return err
		}
	}
	if err := checkRows(o.rows); err != nil {
		return err
	}
	if o.only30 && o.skip30 {
		return fmt.Errorf("-only-30 and -skip-30 exclude each other")
	}
	if _, err := os.Stat(filepath.Join(o.rootfs, "usr/bin/python3")); err != nil {
		return fmt.Errorf("no python rootfs at %s (run `make base-rootfs`): %w", o.rootfs, err)
	}
	if *onlyAdmission || *onlyPlatform || *onlyBurst {
		o.skipBuildah = true // runs only skillbuild: no buildah/podman storage to set up
	}
	start := time.Now()
	b, err := newBench(ctx, o, stdout)
	if err != nil {
		return err
	}
	defer b.close()
	if *onlyBuildCPU {
		return b.buildCPUOnly(ctx, stdout)
	}
	if *onlyRemote {
		return b.remoteOnly(ctx, stdout)
	}
	if *onlyAdmission {
		return b.admissionOnly(ctx, stdout)
	}
	if *onlyPlatform {
		return b.platformOnly(ctx, stdout)
	}
	if *onlyBurst {
		return b.burstOnly(ctx, stdout)
	}
	rep, err := b.all(ctx)
	if err != nil {
		return err
	}
	rep.total = time.Since(start)
	text := rep.markdown()
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, text)
	if o.out != "" {
		if o.appendOut {
			old, err := os.ReadFile(o.out)
			if err != nil && !os.IsNotExist(err) {
				return err
			}
			text = string(old) + "\n" + text
		}
		if err := os.WriteFile(o.out, []byte(text), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nwrote %s (work directory %s)\n", o.out, b.dir)
	}
	return nil
}
