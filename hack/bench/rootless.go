package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skillbuild/skillbuild/internal/rltest"
	"github.com/skillbuild/skillbuild/skill/api"
)

// The rootless rows: the same skillbuild as root (the private containerd)
// and as an ordinary user (the user's rootless containerd inside
// RootlessKit, started by `skillbuild rootless start`), side by side,
// interleaved run by run. The bench runs as root: it creates the user
// (rltest, as the integration suite does) and runs skillbuild as that
// user through setpriv, with an environment of the user's own.

// rootlessSide drives skillbuild as the bench's rootless user.
type rootlessSide struct {
	b *bench
	u *rltest.User
}

// argv runs the user's copy of skillbuild as the user, in its home, with
// --root root (empty: the user's default).
func (r *rootlessSide) argv(root string, args ...string) []string {
	argv := []string{"setpriv", "--reuid=" + strconv.Itoa(r.u.UID), "--regid=" + strconv.Itoa(r.u.GID), "--clear-groups",
		"env", "-i", "-C", r.u.Home, "PATH=" + sysPath, "HOME=" + r.u.Home, "LANG=C.UTF-8", "XDG_RUNTIME_DIR=" + r.u.RunDir,
		r.u.Bin}
	if root != "" {
		argv = append(argv, "--root", root)
	}
	return append(argv, args...)
}

// newRoot is a fresh --root of the user's with the database imported.
func (r *rootlessSide) newRoot(ctx context.Context) (string, error) {
	r.b.roots++
	root := filepath.Join(r.u.Home, fmt.Sprintf("r%02d", r.b.roots))
	if _, err := r.b.exec(ctx, nil, r.argv(root, "db", "import", filepath.Join(r.u.Dir, "osv.zip"))); err != nil {
		return "", fmt.Errorf("rootless db import: %w", err)
	}
	return root, nil
}

func (r *rootlessSide) build(ctx context.Context, root, id string) (time.Duration, error) {
	args := append([]string{"install", "--json", "--progress", "quiet", "--base", baseRef, "--index-url", r.b.index.srv.URL(), id}, pins(core(10))...)
	res, err := r.b.exec(ctx, nil, r.argv(root, args...))
	if err != nil {
		return 0, err
	}
	var doc api.InstallResult
	if err := json.Unmarshal(res.stdout, &doc); err != nil || !doc.Success {
		return 0, fmt.Errorf("rootless install %s: %v %s", id, err, doc.Error)
	}
	return res.wall, nil
}

func (r *rootlessSide) run(ctx context.Context, root, id string, flags ...string) (time.Duration, error) {
	args := append(append([]string{"run", "--json"}, flags...), "-c", "print(1)", id)
	res, err := r.b.exec(ctx, nil, r.argv(root, args...))
	if err != nil {
		return 0, err
	}
	var doc api.RunResult
	if err := json.Unmarshal(res.stdout, &doc); err != nil || strings.TrimSpace(doc.Stdout) != "1" {
		return 0, fmt.Errorf("rootless run printed %q (%v)", doc.Stdout, err)
	}
	return res.wall, nil
}

// rootlessSetup makes the user, starts its containerd, delegates cgroups
// (so every limit holds, as for root) and imports the base and database.
// Whenever it returns a rootlessSide, close removes the user again.
func (b *bench) rootlessSetup(ctx context.Context) (*rootlessSide, error) {
	u, err := rltest.New("sbbench", b.o.bin)
	if err != nil {
		return nil, err
	}
	r := &rootlessSide{b: b, u: u}
	archive := filepath.Join(u.Dir, "base.tar")
	steps := []func() error{
		func() error { return rltest.CopyFile(b.o.db, filepath.Join(u.Dir, "osv.zip"), 0o644) },
		func() error { _, err := b.exec(ctx, nil, b.ctrArgs("images", "export", archive, baseRef)); return err },
		func() error { return os.Chmod(archive, 0o644) },
		func() error {
			_, err := b.exec(ctx, nil, []string{u.Bin, "rootless", "setup", "--user", u.Name})
			return err
		},
		func() error { _, err := b.exec(ctx, nil, r.argv("", "rootless", "start")); return err },
		func() error {
			// The archive names the image (baseRef); --name with the
			// archive's own name would lose the tag.
			_, err := b.exec(ctx, nil, r.argv("", "base", "import", "--oci-archive", archive))
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return r, fmt.Errorf("rootless set-up: %w (user %s)", err, u.Name) // r: for close
		}
	}
	return r, nil
}

func (r *rootlessSide) close() {
	if err := r.u.Remove(); err != nil {
		r.b.say("remove rootless user %s: %v", r.u.Name, err)
	}
}

// rootlessRows measures and renders the rootless section.
func (b *bench) rootlessRows(ctx context.Context) string {
	b.say("rootless: root against an ordinary user's rootless containerd, interleaved")
	var sb strings.Builder
	sb.WriteString("\n## Rootless against root\n\n")
	text, err := b.rootlessTable(ctx)
	if err != nil {
		b.say("  rootless rows failed: %v", err)
		fmt.Fprintf(&sb, "failed: %s\n", oneLine(err.Error()))
		return sb.String()
	}
	return sb.String() + text
}

func (b *bench) rootlessTable(ctx context.Context) (string, error) {
	r, err := b.rootlessSetup(ctx)
	if r != nil {
		defer r.close()
	}
	if err != nil {
		return "", err
	}
	sb := &sbBuilder{b: b}
	reqs := pins(core(10))
	// Warm-up: one cold build each.
	rootWarm, err := b.newRoot(ctx, "")
	if err != nil {
		return "", err
	}
	if _, err := sb.build(ctx, rootWarm, "rlwarm", reqs, true); err != nil {
		return "", fmt.Errorf("root warm-up: %w", err)
	}
	rlWarm, err := r.newRoot(ctx)
	if err != nil {
		return "", err
	}
	if _, err := r.build(ctx, rlWarm, "rlwarm"); err != nil {
		return "", fmt.Errorf("rootless warm-up: %w", err)
	}

	var rootCold, rlCold, rootCached, rlCached []time.Duration
	var rootRoot, rlRoot string
	for i := range b.o.runs {
		id := fmt.Sprintf("rl%02d", i)
		if rootRoot, err = b.newRoot(ctx, ""); err != nil {
			return "", err
		}
		if rlRoot, err = r.newRoot(ctx); err != nil {
			return "", err
		}
		for _, step := range []struct {
			what string
			f    func() (time.Duration, error)
			to   *[]time.Duration
		}{
			{"root cold", func() (time.Duration, error) { s, err := sb.build(ctx, rootRoot, id, reqs, true); return s.wall, err }, &rootCold},
			{"rootless cold", func() (time.Duration, error) { return r.build(ctx, rlRoot, id) }, &rlCold},
			{"root cached", func() (time.Duration, error) { s, err := sb.build(ctx, rootRoot, id, reqs, false); return s.wall, err }, &rootCached},
			{"rootless cached", func() (time.Duration, error) { return r.build(ctx, rlRoot, id) }, &rlCached},
		} {
			d, err := step.f()
			if err != nil {
				return "", fmt.Errorf("%s build %d: %w", step.what, i+1, err)
			}
			*step.to = append(*step.to, d)
		}
		b.say("  build %d: root cold %s, rootless cold %s, root cached %s, rootless cached %s", i+1,
			rootCold[i].Round(time.Millisecond), rlCold[i].Round(time.Millisecond), rootCached[i].Round(time.Millisecond), rlCached[i].Round(time.Millisecond))
	}

	// Runs of the last skill built, interleaved: with the user's
	// delegated cgroups (every limit held, as for root), then without
	// (rlimits, accepted with --require-limits=false).
	id := fmt.Sprintf("rl%02d", b.o.runs-1)
	rootRun := &sbRunner{b: b, root: rootRoot, id: id}
	var rootRunsCg, rlRunsCg, rootRunsRl, rlRunsRl []time.Duration
	measure := func(rootTo, rlTo *[]time.Duration, flags ...string) error {
		for i := range b.o.runLatency {
			res, err := rootRun.run(ctx)
			if err != nil {
				return fmt.Errorf("root run %d: %w", i+1, err)
			}
			*rootTo = append(*rootTo, res.wall)
			d, err := r.run(ctx, rlRoot, id, flags...)
			if err != nil {
				return fmt.Errorf("rootless run %d: %w", i+1, err)
			}
			*rlTo = append(*rlTo, d)
		}
		return nil
	}
	if err := measure(&rootRunsCg, &rlRunsCg); err != nil {
		return "", err
	}
	if _, err := b.exec(ctx, nil, []string{r.u.Bin, "rootless", "setup", "--user", r.u.Name, "--undo"}); err != nil {
		return "", fmt.Errorf("undo the cgroup delegation: %w", err)
	}
	if err := measure(&rootRunsRl, &rlRunsRl, "--require-limits=false"); err != nil {
		return "", err
	}

	var t strings.Builder
	cell := func(d []time.Duration) string {
		lo, hi := minMax(d)
		return fmt.Sprintf("%s (%s–%s)", secs(median(d)), secs(lo), secs(hi))
	}
	ratio := func(rl, root []time.Duration) string {
		return fmt.Sprintf("**%.2f×**", median(rl).Seconds()/median(root).Seconds())
	}
	p50 := func(d []time.Duration) string { return secs(pct(d, 50)) + " / " + secs(pct(d, 95)) }
	t.WriteString("| row | root | rootless | rootless / root |\n|---|---|---|---|\n")
	fmt.Fprintf(&t, "| cold build, 10 distributions (fresh --root; median (min–max) of %d) | %s | %s | %s |\n", len(rootCold), cell(rootCold), cell(rlCold), ratio(rlCold, rootCold))
	fmt.Fprintf(&t, "| cached build, 10 distributions (the same skill again: answered unchanged from the image store) | %s | %s | %s |\n", cell(rootCached), cell(rlCached), ratio(rlCached, rootCached))
	fmt.Fprintf(&t, "| `run` print(1) p50 / p95, rootless with delegated cgroup v1 (%d runs each) | %s | %s | %s |\n", len(rootRunsCg), p50(rootRunsCg), p50(rlRunsCg), ratio(rlRunsCg, rootRunsCg))
	fmt.Fprintf(&t, "| `run` print(1) p50 / p95, rootless without delegation: rlimits, `--require-limits=false` (%d runs each) | %s | %s | %s |\n", len(rootRunsRl), p50(rootRunsRl), p50(rlRunsRl), ratio(rlRunsRl, rootRunsRl))
	fmt.Fprintf(&t, "\nRootless: an ordinary user made for the bench (subordinate ids, `skillbuild rootless start`: containerd\n"+
		"inside RootlessKit, every command re-executed into its namespaces), the cgroup v1 subtree delegated by\n"+
		"`skillbuild rootless setup --user` for the builds and the first run row, taken back for the second. Root: the\n"+
		"bench's private containerd. Both run the same binary, base and index, interleaved run by run after one cold\n"+
		"warm-up build each; whole process wall clock. Rootless pays for entering RootlessKit's namespaces\n"+
		"(a re-exec through nsenter) in every command. Load average at the end of these rows: %s.\n", loadAvg())
	return t.String(), nil
}
