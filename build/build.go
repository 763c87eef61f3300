package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/config"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/tonistiigi/fsutil"
)

// Image labels skillbuild writes into every skill image's config.
const (
	LabelSkillID      = "org.skillbuild.skill.id"
	LabelSkillVersion = "org.skillbuild.skill.version"
	LabelLock         = "org.skillbuild.lock"
	LabelLockDigest   = "org.skillbuild.lock.digest"
	LabelPackages     = "org.skillbuild.packages"
	LabelBase         = "org.opencontainers.image.base.name"
	LabelBaseDigest   = "org.opencontainers.image.base.digest"
)

// Gate decides, from the resolved lock and before anything is fetched,
// whether the build may go on. It returns labels to record in the image
// (e.g. the scan verdict) or an error that stops the build.
type Gate func(ctx context.Context, lock sbllb.Lock) (labels map[string]string, err error)

// Request is one skill build.
type Request struct {
	Skill config.Skill
	// Gate runs between resolution and fetching; nil lets every lock through.
	Gate Gate
	// Labels are added to the image config (e.g. "scan disabled").
	Labels map[string]string
	// Status receives BuildKit's progress; Build closes it. May be nil.
	Status chan *bkclient.SolveStatus
	// Refresh re-runs resolution even when its inputs are unchanged.
	Refresh bool
}

// Package is a name and version in a built image.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Result describes a finished build.
type Result struct {
	ImageTag  string        `json:"image_tag"` // as given, e.g. atom-skill:weather-v3
	ImageName string        `json:"image_name"`
	Digest    digest.Digest `json:"digest"`
	Lock      sbllb.Lock    `json:"lock"`
	Packages  []Package     `json:"packages"`
	Labels    map[string]string
	// Cached counts the steps BuildKit answered from cache; Executed the
	// steps it ran.
	Cached, Executed int
	Logs             []string
}

// Build resolves, gates, installs and exports the skill, and tags the
// image only after everything succeeded.
func (e *Engine) Build(ctx context.Context, req Request) (res *Result, retErr error) {
	s := req.Skill
	if req.Status != nil {
		defer close(req.Status)
	}
	finalName, err := imageName(s.Tag())
	if err != nil {
		return nil, err
	}
	if s.Build.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, s.Build.Timeout, errBuildTimeout)
		defer cancel()
	}

	var attachables []session.Attachable
	var origIndex []string
	var trusted []string
	if sbllb.UsesIndex(s.Index) {
		urls := indexURLs(s.Index)
		origIndex = urls
		proxy, err := NewIndexProxy(urls, proxyOpts(urls)...)
		if err != nil {
			return nil, err
		}
		defer proxy.Close()
		step := proxy.StepURLs()
		s.Index.URL, s.Index.ExtraURLs = step[0], step[1:]
		trusted = proxy.TrustedHosts()
		attachables = append(attachables, proxy.Attachable(sbllb.IndexSocketID))
	}

	locals := map[string]fsutil.FS{}
	for i, dir := range s.Index.FindLinks {
		fs, err := fsutil.NewFS(dir)
		if err != nil {
			return nil, fmt.Errorf("find-links directory %s: %w", dir, errdefs.ErrInvalidArgument)
		}
		locals[sbllb.FindLinksName(i)] = fs
	}

	staging := stagingName(s.ID)
	cs := e.ctd.ImageService()
	defer func() {
		// The staging name never outlives the build.
		cs.Delete(context.WithoutCancel(ctx), staging) //nolint:errcheck
	}()

	var (
		lock      sbllb.Lock
		funcErr   error // an error of our own, returned with its type intact
		gateLabel map[string]string
		baseDgst  digest.Digest
	)
	// Errors returned from buildFn cross BuildKit's gateway as strings; keep
	// our own typed errors aside and return them as they are.
	fail := func(err error) error {
		funcErr = err
		return err
	}
	buildFn := func(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
		_, dgst, cfgBytes, err := c.ResolveImageConfig(ctx, s.Base, sourceresolver.Opt{
			ImageOpt: &sourceresolver.ResolveImageOpt{ResolveMode: "prefer-local"},
		})
		if err != nil {
			return nil, fail(baseMissing(s.Base, err))
		}
		baseDgst = dgst
		pinned := pinRef(s.Base, dgst)
		venv := sbllb.Venv(sbllb.Base(pinned), s)
		out := sbllb.Resolve(venv, s, sbllb.ResolveOpts{Trusted: trusted, Refresh: req.Refresh})
		def, err := out.Marshal(ctx)
		if err != nil {
			return nil, err
		}
		rr, err := c.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
		if err != nil {
			return nil, err
		}
		ref, err := rr.SingleRef()
		if err != nil {
			return nil, err
		}
		b, err := ref.ReadFile(ctx, gateway.ReadRequest{Filename: sbllb.ReportFile})
		if err != nil {
			return nil, err // the resolve step failed: explained from its log
		}
		lock, err = sbllb.ParseReport(b)
		if err != nil {
			return nil, fail(err)
		}
		if err := checkSdists(lock, s.Index.AllowSdist); err != nil {
			return nil, fail(err)
		}
		if req.Gate != nil {
			gateLabel, err = req.Gate(ctx, lock)
			if err != nil {
				return nil, fail(err)
			}
		}
		installed, err := sbllb.Install(venv, s, lock)
		if err != nil {
			return nil, fail(err)
		}
		def, err = installed.Marshal(ctx)
		if err != nil {
			return nil, err
		}
		res, err := c.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
		if err != nil {
			return nil, err
		}
		labels := map[string]string{}
		for k, v := range req.Labels {
			labels[k] = v
		}
		for k, v := range gateLabel {
			labels[k] = v
		}
		cfg, err := imageConfig(cfgBytes, s, lock, pinned, dgst, labels)
		if err != nil {
			return nil, fail(err)
		}
		res.AddMeta(exptypes.ExporterImageConfigKey, cfg)
		return res, nil
	}

	statusCh := make(chan *bkclient.SolveStatus)
	col := newCollector()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for st := range statusCh {
			col.add(st)
			if req.Status != nil {
				req.Status <- st
			}
		}
	}()
	solveOpt := bkclient.SolveOpt{
		Exports: []bkclient.ExportEntry{{
			Type: bkclient.ExporterImage,
			Attrs: map[string]string{
				"name":              staging,
				"unpack":            "true",
				"store":             "true",
				"source-date-epoch": "0",
			},
		}},
		LocalMounts: locals,
		Session:     attachables,
	}
	resp, err := e.client.Build(ctx, solveOpt, "skillbuild", buildFn, statusCh)
	wg.Wait()
	if err != nil {
		if funcErr != nil {
			return nil, funcErr
		}
		return nil, explain(ctx, err, s, origIndex, col)
	}

	dgst, err := digest.Parse(resp.ExporterResponse[exptypes.ExporterImageDigestKey])
	if err != nil {
		return nil, fmt.Errorf("exporter returned no image digest: %w", err)
	}
	img, err := cs.Get(ctx, staging)
	if err != nil {
		return nil, fmt.Errorf("exported image %s: %w", staging, err)
	}
	pkgs := make([]Package, len(lock))
	for i, d := range lock {
		pkgs[i] = Package{Name: d.Name, Version: d.Version}
	}
	recordLabels := map[string]string{
		LabelSkillID:      s.ID,
		LabelSkillVersion: s.Version,
		LabelLockDigest:   lock.Digest().String(),
		LabelPackages:     fmt.Sprint(len(lock)),
		LabelBaseDigest:   baseDgst.String(),
	}
	// Tag last: only now does the skill's name point at the new image.
	if err := setTag(ctx, e.ctd, images.Image{Name: finalName, Target: img.Target, Labels: recordLabels}); err != nil {
		return nil, err
	}
	cached, executed := col.counts()
	return &Result{
		ImageTag:  Familiar(finalName),
		ImageName: finalName,
		Digest:    dgst,
		Lock:      lock,
		Packages:  pkgs,
		Labels:    gateLabel,
		Cached:    cached,
		Executed:  executed,
		Logs:      col.logLines(),
	}, nil
}

var errBuildTimeout = errors.New("build timeout")

func indexURLs(ix config.Index) []string {
	u := ix.URL
	if u == "" {
		u = "https://pypi.org/simple"
	}
	return append([]string{u}, ix.ExtraURLs...)
}

// proxyOpts allows the file host that pypi.org's pages link to.
func proxyOpts(urls []string) []IndexProxyOpt {
	for _, u := range urls {
		if strings.Contains(u, "://pypi.org/") {
			return []IndexProxyOpt{WithAllowedHosts(PyPIFilesHost)}
		}
	}
	return nil
}

// imageName is the name a tag is stored under in containerd (fully
// qualified, as BuildKit and nerdctl store it).
func imageName(tag string) (string, error) {
	named, err := reference.ParseNormalizedNamed(tag)
	if err != nil {
		return "", fmt.Errorf("image tag %q: %v: %w", tag, err, errdefs.ErrInvalidArgument)
	}
	return named.String(), nil
}

// Familiar is the short form of an image name (atom-skill:x-v1).
func Familiar(name string) string {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	return reference.FamiliarString(named)
}

func stagingName(id string) string {
	var b [8]byte
	rand.Read(b[:]) //nolint:errcheck
	return "localhost/skillbuild-staging/" + id + ":" + hex.EncodeToString(b[:])
}

func pinRef(ref string, dgst digest.Digest) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil || dgst == "" {
		return ref
	}
	c, err := reference.WithDigest(reference.TrimNamed(named), dgst)
	if err != nil {
		return ref
	}
	return c.String()
}

func baseMissing(base string, err error) error {
	return fmt.Errorf("base image %s is not in containerd and could not be pulled (%v); import one with `skillbuild base import --rootfs DIR --name %s` (or --oci-archive/--oci-layout), or pass --base: %w",
		base, firstLine(err.Error()), base, errdefs.ErrNotFound)
}

func checkSdists(lock sbllb.Lock, allow bool) error {
	if allow {
		return nil
	}
	for _, d := range lock {
		if d.Sdist {
			return fmt.Errorf("%s %s resolved to a source distribution (%s); source builds run arbitrary code at build time and are refused; pass --allow-sdist to allow them: %w",
				d.Name, d.Version, d.Filename, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// imageConfig derives the skill image's config from the base's.
func imageConfig(baseCfg []byte, s config.Skill, lock sbllb.Lock, baseRef string, baseDgst digest.Digest, extra map[string]string) ([]byte, error) {
	var img ocispec.Image
	if err := json.Unmarshal(baseCfg, &img); err != nil {
		return nil, fmt.Errorf("base image config: %w", err)
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	env := []string{}
	for _, kv := range img.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH":
			path = v
			continue
		case "VIRTUAL_ENV", "PYTHONHOME":
			continue
		}
		env = append(env, kv)
	}
	img.Config.Env = append([]string{
		"PATH=" + sbllb.VenvDir + "/bin:" + path,
		"VIRTUAL_ENV=" + sbllb.VenvDir,
		"PYTHONDONTWRITEBYTECODE=1",
	}, env...)
	img.Config.User = sbllb.User
	img.Config.WorkingDir = sbllb.WorkDir
	img.Config.Entrypoint = nil
	img.Config.Cmd = []string{"python3"}
	if img.Config.Labels == nil {
		img.Config.Labels = map[string]string{}
	}
	labels := img.Config.Labels
	labels[LabelSkillID] = s.ID
	labels[LabelSkillVersion] = s.Version
	labels[LabelLock] = lock.Text()
	labels[LabelLockDigest] = lock.Digest().String()
	labels[LabelPackages] = fmt.Sprint(len(lock))
	labels[LabelBase] = baseRef
	labels[LabelBaseDigest] = baseDgst.String()
	for k, v := range extra {
		labels[k] = v
	}
	epoch := time.Unix(0, 0).UTC()
	img.Created = &epoch
	return json.Marshal(img)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
