package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skillbuild/skillbuild/internal/regtest"
	"github.com/skillbuild/skillbuild/skill/api"
)

// The registry rows: pushing a 10-distribution skill to an empty local
// registry and then a second skill sharing 9 of its distributions (bytes
// and time; only the new layer should move), with `buildah push` of the
// same images as the peer; and a fresh runner (empty --root, empty
// containerd namespace) building with --cache-from against a cold build.

// pushSample is one push: its wall time and the bytes the registry stored
// anew (read from its storage, whatever the tool says).
type pushSample struct {
	wall  time.Duration
	bytes int64
}

// registryRows is what the registry section measured.
type registryRows struct {
	err        error
	sbFirst    []pushSample // skillbuild push of the first skill
	sbSecond   []pushSample // ... and of the second one
	bhFirst    []pushSample // buildah push of the same images
	bhSecond   []pushSample
	warm, cold []time.Duration // fresh --root with --cache-from, and without
	warmSteps  []int           // executed_steps of the --cache-from builds
	coldSteps  []int
}

const (
	regFirst  = "reg-first"
	regSecond = "reg-second"
	regCached = "reg-cached"
)

// registrySection measures the registry rows, interleaving the tools run
// by run; a failure is reported in the section and the rest still runs.
func (b *bench) registrySection(ctx context.Context) *registryRows {
	rows := &registryRows{}
	if rows.err = b.measurePushes(ctx, rows); rows.err != nil {
		b.say("  registry push rows failed: %v", rows.err)
		return rows
	}
	if rows.err = b.measureRegistryCache(ctx, rows); rows.err != nil {
		b.say("  registry cache rows failed: %v", rows.err)
	}
	return rows
}

// startRegistry starts Debian's docker-registry on plain HTTP under the
// work directory; stop it with the returned func.
func (b *bench) startRegistry(name string) (*regtest.Registry, func(), error) {
	dir := filepath.Join(b.dir, "registries", name)
	r, err := regtest.Start(dir, b.cleanEnv())
	if err != nil {
		return nil, nil, fmt.Errorf("start a registry: %w", err)
	}
	return r, func() { r.Stop(); os.RemoveAll(dir) }, nil //nolint:errcheck
}

// skillImage is the containerd name of a skill image the bench built.
func skillImage(id string) string { return "docker.io/library/atom-skill:" + id + "-v1" }

func (b *bench) measurePushes(ctx context.Context, rows *registryRows) error {
	first := pins(core(10))
	second := append(pins(core(9)), pins([]string{coreName(10)})...)
	root, err := b.newRoot(ctx, "")
	if err != nil {
		return err
	}
	for id, reqs := range map[string][]string{regFirst: first, regSecond: second} {
		argv := b.sbArgs(root, append([]string{"install", "--json", "--progress", "quiet", "--base", baseRef, "--index-url", b.index.srv.URL(), id}, reqs...)...)
		if _, err := b.exec(ctx, nil, argv); err != nil {
			return err
		}
	}
	buildahImage := map[string]string{}
	if b.podman {
		// The same images in buildah's storage, through an OCI archive.
		for _, id := range []string{regFirst, regSecond} {
			archive := filepath.Join(b.dir, id+".oci.tar")
			if _, err := b.exec(ctx, nil, b.ctrArgs("images", "export", "--platform", "linux/amd64", archive, skillImage(id))); err != nil {
				return err
			}
			r, err := b.exec(ctx, nil, b.buildahArgs("pull", "--quiet", "oci-archive:"+archive))
			if err != nil {
				return err
			}
			lines := strings.Fields(string(r.stdout))
			if len(lines) == 0 {
				return fmt.Errorf("buildah pull oci-archive:%s printed no image id", archive)
			}
			buildahImage[id] = lines[len(lines)-1]
		}
	}
	b.say("registry: push %s, then %s sharing 9 of its 10 distributions, to an empty registry", regFirst, regSecond)
	for i := 0; i < b.o.runs; i++ {
		sb := func() error {
			f, s, err := b.pushPair(ctx, fmt.Sprintf("sb-%d", i), func(host, id string) []string {
				return b.sbArgs(root, "push", "--json", "--insecure-registry", host, id, host+"/skills/"+id+":v1")
			})
			rows.sbFirst, rows.sbSecond = append(rows.sbFirst, f), append(rows.sbSecond, s)
			return err
		}
		bh := func() error {
			if !b.podman {
				return nil
			}
			f, s, err := b.pushPair(ctx, fmt.Sprintf("buildah-%d", i), func(host, id string) []string {
				return b.buildahArgs("push", "--quiet", "--tls-verify=false", buildahImage[id], "docker://"+host+"/skills/"+id+":v1")
			})
			rows.bhFirst, rows.bhSecond = append(rows.bhFirst, f), append(rows.bhSecond, s)
			return err
		}
		if err := interleave(i, sb, bh); err != nil {
			return err
		}
		b.say("  run %d: skillbuild %s + %s, buildah %s", i+1, last(rows.sbFirst), last(rows.sbSecond), lastOr(rows.bhFirst, rows.bhSecond))
	}
	return nil
}

// pushPair pushes the first and then the second skill to a registry of
// their own, started empty.
func (b *bench) pushPair(ctx context.Context, name string, argv func(host, id string) []string) (first, second pushSample, err error) {
	reg, stop, err := b.startRegistry(name)
	if err != nil {
		return first, second, err
	}
	defer stop()
	push := func(id string) (pushSample, error) {
		before, err := reg.Blobs()
		if err != nil {
			return pushSample{}, err
		}
		r, err := b.exec(ctx, nil, argv(reg.Host, id))
		if err != nil {
			return pushSample{}, err
		}
		after, err := reg.Blobs()
		if err != nil {
			return pushSample{}, err
		}
		var n int64
		for d, size := range after {
			if _, ok := before[d]; !ok {
				n += size
			}
		}
		return pushSample{wall: r.wall, bytes: n}, nil
	}
	if first, err = push(regFirst); err != nil {
		return first, second, err
	}
	second, err = push(regSecond)
	return first, second, err
}

// measureRegistryCache exports a 10-distribution skill's build cache to a
// registry once, then times, run by run, a fresh runner (new --root, new
// containerd namespace holding only the base image) building it with
// --cache-from against one building it cold.
func (b *bench) measureRegistryCache(ctx context.Context, rows *registryRows) error {
	reg, stop, err := b.startRegistry("cache")
	if err != nil {
		return err
	}
	defer stop()
	reqs := pins(core(10))
	cacheRef := reg.Host + "/cache/{id}:buildcache"
	install := func(ns, root string, extra ...string) (sample, error) {
		args := append([]string{"install", "--json", "--progress", "quiet", "--base", baseRef, "--index-url", b.index.srv.URL(),
			"--insecure-registry", reg.Host}, extra...)
		argv := append([]string{b.o.bin, "--address", b.sock, "--namespace", ns, "--root", root}, append(append(args, regCached), reqs...)...)
		r, err := b.exec(ctx, nil, argv)
		if err != nil {
			return sample{}, err
		}
		var doc api.InstallResult
		if err := json.Unmarshal(r.stdout, &doc); err != nil || !doc.Success {
			return sample{}, fmt.Errorf("install %s: %v %s", regCached, err, doc.Error)
		}
		return sample{wall: r.wall, steps: len(doc.Steps)}, nil
	}
	// A fresh runner: its own namespace with the base imported and its
	// own root with the database (both untimed).
	runner := func(name string) (string, string, error) {
		ns := "runner-" + name
		root := filepath.Join(b.dir, "runner-"+name)
		for _, args := range [][]string{{"base", "import", "--rootfs", b.o.rootfs, "--name", baseRef}, {"db", "import", b.o.db}} {
			if _, err := b.exec(ctx, nil, append([]string{b.o.bin, "--address", b.sock, "--namespace", ns, "--root", root}, args...)); err != nil {
				return "", "", err
			}
		}
		return ns, root, nil
	}
	ns, root, err := runner("export")
	if err != nil {
		return err
	}
	if _, err := install(ns, root, "--cache-to", cacheRef); err != nil {
		return fmt.Errorf("export the build cache: %w", err)
	}
	b.say("registry: fresh --root with --cache-from against cold, %d distributions", len(reqs))
	for i := 0; i < b.o.runs; i++ {
		warm := func() error {
			ns, root, err := runner(fmt.Sprintf("warm-%d", i))
			if err != nil {
				return err
			}
			s, err := install(ns, root, "--cache-from", cacheRef)
			rows.warm, rows.warmSteps = append(rows.warm, s.wall), append(rows.warmSteps, s.steps)
			return err
		}
		cold := func() error {
			ns, root, err := runner(fmt.Sprintf("cold-%d", i))
			if err != nil {
				return err
			}
			s, err := install(ns, root)
			rows.cold, rows.coldSteps = append(rows.cold, s.wall), append(rows.coldSteps, s.steps)
			return err
		}
		if err := interleave(i, warm, cold); err != nil {
			return err
		}
		b.say("  run %d: --cache-from %s (%d steps run), cold %s (%d steps run)", i+1,
			rows.warm[i].Round(time.Millisecond), rows.warmSteps[i], rows.cold[i].Round(time.Millisecond), rows.coldSteps[i])
	}
	return nil
}

// interleave runs a then b in even runs and b then a in odd ones, so
// that drift on a shared machine hits both alike.
func interleave(run int, a, b func() error) error {
	if run%2 == 1 {
		a, b = b, a
	}
	if err := a(); err != nil {
		return err
	}
	return b()
}

func last(s []pushSample) string {
	if len(s) == 0 {
		return "-"
	}
	p := s[len(s)-1]
	return fmt.Sprintf("%s/%s", p.wall.Round(time.Millisecond), kb(p.bytes))
}

func lastOr(a, b []pushSample) string {
	if len(a) == 0 {
		return "not measured"
	}
	return last(a) + " + " + last(b)
}

func kb(n int64) string {
	if n >= 10<<20 {
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.0f KB", float64(n)/1e3)
}

// pushCell is a push series as a table cell: time median (min–max) and
// the median bytes stored.
func pushCell(s []pushSample) string {
	if len(s) == 0 {
		return "not measured"
	}
	walls := make([]time.Duration, len(s))
	bytes := make([]float64, len(s))
	for i, p := range s {
		walls[i], bytes[i] = p.wall, float64(p.bytes)
	}
	lo, hi := minMax(walls)
	med, _, _ := floatStats(bytes)
	return fmt.Sprintf("%s (%s–%s), %s", secs(median(walls)), secs(lo), secs(hi), kb(int64(med)))
}

func ratioCell(s, ref []pushSample) string {
	if len(s) == 0 || len(ref) == 0 {
		return ""
	}
	w := func(ps []pushSample) time.Duration {
		d := make([]time.Duration, len(ps))
		for i, p := range ps {
			d[i] = p.wall
		}
		return median(d)
	}
	return fmt.Sprintf("%.2f×", w(s).Seconds()/w(ref).Seconds())
}

// markdown renders the registry section.
func (r *registryRows) markdown() string {
	var sb strings.Builder
	sb.WriteString("Pushes go to Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1, plain HTTP, a\n" +
		"fresh one per run for each tool. skillbuild: `skillbuild push --json --insecure-registry HOST SKILL REF`;\n" +
		"buildah: the same images exported with `ctr images export` into buildah's storage (`buildah pull\n" +
		"oci-archive:`, untimed) and `buildah push --tls-verify=false IMAGE docker://REF`. Bytes are what the\n" +
		"registry stored anew, read from its storage. The second skill shares 9 of the first's 10 distributions\n" +
		"and goes to another repository of the same registry. skillbuild pushes the blobs as they are in\n" +
		"containerd, so the base layer goes up as `base import` stored it (an uncompressed tar); buildah gzips\n" +
		"every layer while it pushes, which is most of its time.\n\n")
	if r.err != nil {
		fmt.Fprintf(&sb, "failed: %s\n\n", oneLine(r.err.Error()))
	}
	sb.WriteString("| row | skillbuild push | buildah push | ratio |\n|---|---|---|---|\n")
	fmt.Fprintf(&sb, "| push, 10 distributions, empty registry | %s | %s | %s |\n", pushCell(r.sbFirst), pushCell(r.bhFirst), ratioCell(r.bhFirst, r.sbFirst))
	fmt.Fprintf(&sb, "| push, second skill sharing 9 of 10 | %s | %s | %s |\n", pushCell(r.sbSecond), pushCell(r.bhSecond), ratioCell(r.bhSecond, r.sbSecond))
	if len(r.warm) > 0 && len(r.cold) > 0 {
		wlo, whi := minMax(r.warm)
		clo, chi := minMax(r.cold)
		ratio := median(r.warm).Seconds() / median(r.cold).Seconds()
		verdict := "met"
		if ratio > 0.3 {
			verdict = "**missed**"
		}
		sb.WriteString("\nA fresh runner (new `--root`, new containerd namespace holding only the base image, database imported\n" +
			"untimed) builds a 10-distribution skill whose cache another runner exported with `--cache-to REF`\n" +
			"(mode=max); the cold column is the same fresh runner without `--cache-from`. Interleaved run by run.\n\n")
		sb.WriteString("| row | --cache-from REF | cold | ratio (goal ≤ 0.3×) | steps run (cache-from / cold) |\n|---|---|---|---|---|\n")
		fmt.Fprintf(&sb, "| fresh --root, 10 distributions | %s (%s–%s) | %s (%s–%s) | %.2f× %s | %d / %d |\n",
			secs(median(r.warm)), secs(wlo), secs(whi), secs(median(r.cold)), secs(clo), secs(chi), ratio, verdict,
			medianInt(r.warmSteps), medianInt(r.coldSteps))
	}
	return sb.String()
}

func medianInt(v []int) int {
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	m, _, _ := floatStats(f)
	return int(m)
}
