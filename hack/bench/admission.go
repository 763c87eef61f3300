package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/skillbuild/skillbuild/skill/api"
)

// onlyAdmission measures the admission rows alone.
var onlyAdmission = flag.Bool("only-admission", false, "measure only warm print(1) through serve in the base, a skill built by the server's root and one built by another root (-latency-runs each, interleaved); prints the rows, writes nothing")

// admissionRow is one image of the admission rows: what a warm run in it
// costs, and its first run on a fresh server.
type admissionRow struct {
	name  string // the image, as the table names it
	does  string // what admission does for a warm run of it
	req   map[string]any
	check func(*api.Admission) error // how it must have been admitted
	warm  []time.Duration
	first time.Duration // the server's first run of it: a pool miss
}

// Skill ids of the admission rows (the same requirements, one installed in
// the server's root, one in another root).
const (
	admOwnID     = "adm-own"
	admForeignID = "adm-foreign"
)

// admissionOnly measures and prints the admission rows.
func (b *bench) admissionOnly(ctx context.Context, stdout io.Writer) error {
	root, err := b.newRoot(ctx, "")
	if err != nil {
		return err
	}
	rep := &serveReport{}
	if err := b.measureAdmission(ctx, root, rep); err != nil {
		return err
	}
	fmt.Fprint(stdout, rep.admissionMarkdown())
	return nil
}

// admissionRows are the three images: the base (admitted by its origin
// label), a skill built by the server's root (by its build mark) and the
// same kind of skill built by another root (verified once, then by the
// cached decision).
func admissionRows() []*admissionRow {
	origin := func(want string) func(*api.Admission) error {
		return func(a *api.Admission) error {
			if a == nil || a.Origin != want {
				return fmt.Errorf("admitted as %+v, want origin %q", a, want)
			}
			return nil
		}
	}
	return []*admissionRow{
		{name: "(a) the Debian python base (`image:`)", req: map[string]any{"skill_id": "bench", "image": baseRef, "code": "print(1)"},
			does: "origin label `base`, allowed by `--allow-base-images`", check: origin(api.OriginBase)},
		{name: "(b) a skill built by the server's own root (`skill_id`)", req: map[string]any{"skill_id": admOwnID, "code": "print(1)"},
			does: "HMAC `org.skillbuild.built` of the image digest under the root's build key", check: origin(api.OriginBuilt)},
		{name: "(c) the same skill built by another root (`skill_id`)", req: map[string]any{"skill_id": admForeignID, "code": "print(1)"},
			does: "no mark of this root: the decision cached by (image digest, DB sha, policy digest) since its first run verified it",
			check: func(a *api.Admission) error {
				if a == nil || a.Origin == api.OriginBuilt || a.Origin == api.OriginBase || a.Scan == "" || a.Unscanned != "" {
					return fmt.Errorf("admitted as %+v, want an image from elsewhere, verified and scanned", a)
				}
				return nil
			}},
	}
}

// admissionOrder is the order of round's runs over n rows: each row once,
// the first one rotating, so no row always follows the same one.
func admissionOrder(round, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = (round + i) % n
	}
	return out
}

// measureAdmission installs one tiny skill in the server's root and the
// same in a second root, starts one server on root and times warm print(1)
// in the base, the own skill and the foreign skill, one of each in turn;
// the first run of each (a pool miss; the foreign image's pays its
// verification) is kept apart.
func (b *bench) measureAdmission(ctx context.Context, root string, rep *serveReport) error {
	other, err := b.newRoot(ctx, "")
	if err != nil {
		return err
	}
	reqs := pins(core(1))
	for _, in := range []struct{ root, id string }{{root, admOwnID}, {other, admForeignID}} {
		if _, err := (&sbBuilder{b: b}).build(ctx, in.root, in.id, reqs, false); err != nil {
			return fmt.Errorf("install %s: %w", in.id, err)
		}
	}
	rows := admissionRows()
	b.say("serve: admission, warm print(1) in the base, a skill of this root and one of another root, %d each, interleaved", b.o.runLatency)
	warm := 2 * len(rows)
	s, err := b.startServe(ctx, root, "serve-admission", "--warm-per-skill", "2", "--max-warm", fmt.Sprint(warm))
	if err != nil {
		return err
	}
	defer s.stop()
	one := func(r *admissionRow) (time.Duration, error) {
		t0 := time.Now()
		d, err := s.runDoc(r.req)
		took := time.Since(t0)
		if err == nil && d.Stdout != "1\n" {
			err = fmt.Errorf("print(1) printed %q (exit %v, stderr %q, %d ms inside)", d.Stdout, exitOf(d), d.Stderr, d.DurationMS)
		}
		if err == nil {
			err = r.check(d.Admission)
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", r.name, err)
		}
		return took, nil
	}
	// First runs, each with the pool quiet: no warm container of the image
	// yet, and nothing decided about it.
	for i, r := range rows {
		s.quiet(2 * i)
		if r.first, err = one(r); err != nil {
			return err
		}
	}
	for round := range b.o.runLatency {
		for _, i := range admissionOrder(round, len(rows)) {
			s.quiet(warm)
			d, err := one(rows[i])
			if err != nil {
				return err
			}
			rows[i].warm = append(rows[i].warm, d)
		}
	}
	rep.admission, rep.admissionLoad = rows, loadAvg()
	var line []string
	for _, r := range rows {
		line = append(line, fmt.Sprintf("%s p50 %s", strings.SplitN(r.name, " ", 2)[0], secs(median(r.warm))))
	}
	b.say("  %s; first run of the foreign image %s (load %s)", strings.Join(line, ", "), secs(rows[2].first), rep.admissionLoad)
	return nil
}

// admissionMarkdown is the admission rows: warm runs side by side, and the
// first runs apart.
func (r *serveReport) admissionMarkdown() string {
	rows := r.admission
	if len(rows) != 3 {
		return ""
	}
	var sb strings.Builder
	sb.WriteString("\n### Admission\n\n")
	fmt.Fprintf(&sb, "Every run's image is admitted before its container is created, warm runs too. One `skillbuild serve` "+
		"(2 warm containers per image, at most 6, quiet before each run), print(1) through `POST /v1/run` in three images, "+
		"one of each in turn (the first rotating), %d each. (b) and (c) are the same kind of image, built the same way with "+
		"the same one wheel from the bench's index, and differ in how they are admitted; (a) is another image (no skill "+
		"venv) named by `image:`. "+
		"Load average at the end: %s.\n\n", len(rows[0].warm), r.admissionLoad)
	sb.WriteString("| image | what admission does on a warm run | p50 | p95 | p50 ratio to (a) | p50 ratio to (b) |\n|---|---|---|---|---|---|\n")
	for _, row := range rows {
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %.2f× | %.2f× |\n", row.name, row.does, secs(median(row.warm)), secs(pct(row.warm, 95)),
			ratio(median(row.warm), median(rows[0].warm)), ratio(median(row.warm), median(rows[1].warm)))
	}
	sb.WriteString("\n| first run on the server (no warm container of the image yet: a container of its own; one run each) | latency | ratio to (b)'s first run |\n|---|---|---|\n")
	fmt.Fprintf(&sb, "| (b) own skill: admitted by its mark | %s | 1.00× |\n", secs(rows[1].first))
	fmt.Fprintf(&sb, "| (c) first run of a foreign image (verification: layers vs lock by `layers.CheckForeign`, its lock scanned against this host's DB) | %s | %.2f× |\n",
		secs(rows[2].first), ratio(rows[2].first, rows[1].first))
	return sb.String()
}

// exitOf is a run's exit code, or "none" when no process ran.
func exitOf(d api.RunResult) string {
	if d.ExitCode == nil {
		return "none"
	}
	return fmt.Sprint(*d.ExitCode)
}
