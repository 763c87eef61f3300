package llb

import (
	_ "embed"
	"fmt"
	"hash/fnv"
	"math"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/lock"
)

// pipCacheDir is where the resolve step's shared pip cache is mounted.
const pipCacheDir = "/run/skillbuild/pip-cache"

// IndexSocketID is the session socket ID through which the resolve step
// reaches the package index (see WithIndexAccess).
const IndexSocketID = "skillbuild-index"

// stepEnv is the whole environment of every step: nothing from the host
// or the base image's pip configuration leaks in.
var stepEnv = [][2]string{
	{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	{"HOME", "/tmp"},
	{"LANG", "C.UTF-8"},
	{"PIP_CONFIG_FILE", "/dev/null"},
	{"PIP_DISABLE_PIP_VERSION_CHECK", "1"},
	{"PIP_NO_INPUT", "1"},
	{"PIP_ROOT_USER_ACTION", "ignore"},
	{"PYTHONNOUSERSITE", "1"},
	{"PYTHONDONTWRITEBYTECODE", "1"}, // no stdlib .pyc lands in a layer (installs compile explicitly)
	{"SOURCE_DATE_EPOCH", "0"},
}

// Base is the skill's base image, taken from containerd's image store when
// it is there and from its registry otherwise. ref should be pinned by
// digest so the cache key does not depend on a moving tag.
func Base(ref string) llb.State {
	return llb.Image(ref, llb.ResolveModePreferLocal, llb.WithCustomNamef("base %s", ref))
}

// BaseLayout is the skill's base image read from the OCI layout content
// store storeID of the client's session (an OCI archive or layout the
// client has, for builders without containerd). ref must be pinned by
// digest.
func BaseLayout(ref, storeID string) llb.State {
	return llb.OCILayout(ref, llb.OCIStore("", storeID), llb.WithCustomNamef("base %s", ref))
}

// limits are the build limits as op metadata (not part of the cache key).
func limits(l config.BuildLimits) []llb.RunOption {
	var opts []llb.RunOption
	if l.InRlimits {
		return rlimits(l)
	}
	if l.MemoryBytes > 0 {
		opts = append(opts, llb.MemoryLimit(l.MemoryBytes), llb.MemorySwapLimit(l.MemoryBytes))
	}
	if l.CPUs > 0 {
		const period = 100000
		opts = append(opts, llb.CPUPeriod(period), llb.CPUQuota(int64(l.CPUs*period)))
	}
	return opts
}

// rlimits are the build limits as rlimits of each step's processes, for
// steps without a cgroup. Memory is RLIMIT_DATA (what a process allocates
// writable), not RLIMIT_AS: runc applies rlimits before it loads seccomp,
// and its own Go init cannot even do that under an address-space limit of
// a gigabyte. Unlike op metadata, ulimits are part of the
// cache key; the layers a step makes do not depend on them.
func rlimits(l config.BuildLimits) []llb.RunOption {
	var opts []llb.RunOption
	if l.MemoryBytes > 0 {
		opts = append(opts, llb.AddUlimit(llb.UlimitData, l.MemoryBytes, l.MemoryBytes))
	}
	if l.CPUs > 0 && l.Timeout > 0 {
		secs := int64(math.Max(1, math.Ceil(l.CPUs*l.Timeout.Seconds())))
		opts = append(opts, llb.AddUlimit(llb.UlimitCPU, secs, secs))
	}
	return opts
}

func step(name string, argv []string, l config.BuildLimits, extra ...llb.RunOption) []llb.RunOption {
	opts := []llb.RunOption{llb.Args(argv), llb.WithCustomName(name), llb.Dir("/")}
	for _, kv := range stepEnv {
		opts = append(opts, llb.AddEnv(kv[0], kv[1]))
	}
	opts = append(opts, limits(l)...)
	// /tmp (also HOME) is a tmpfs of the step: what pip or a build leaves
	// there is not part of any layer, and an unprivileged step can write it.
	opts = append(opts, llb.AddMount("/tmp", llb.Scratch(), llb.Tmpfs()))
	// Network last-but-extra: callers may only tighten it (WithIndexAccess
	// also says NONE).
	opts = append(opts, llb.Network(pb.NetMode_NONE))
	return append(opts, extra...)
}

//go:embed mkvenv.py
var mkvenvScript []byte

// Venv creates the skill's virtual environment without pip (the base's pip
// drives installs through --python), with the network off, and with every
// time in its layer at the epoch (mkvenv.py).
func Venv(base llb.State, s config.Skill) llb.State {
	script := llb.Scratch().File(llb.Mkfile("/mkvenv.py", 0o644, mkvenvScript), llb.WithCustomName("skillbuild venv maker"))
	argv := []string{"python3", "-I", "/run/skillbuild/mkvenv/mkvenv.py", VenvDir}
	return base.Run(step(StepVenv+" "+VenvDir, argv, s.Build, llb.AddMount("/run/skillbuild/mkvenv", script, llb.Readonly))...).Root()
}

// epoch is the time of every file in the skill's layers (and
// SOURCE_DATE_EPOCH of every step): each step that makes a layer sets it
// itself, so exporting needs no timestamp rewrite.
var epoch = time.Unix(0, 0).UTC()

// FixedTimes reports whether every file in the layers Install makes for s
// with o has the epoch as its time. Layers pip writes (source
// distributions, the single-layer pipeline) have the times of the step
// that wrote them.
func FixedTimes(s config.Skill, o InstallOpts) bool {
	return !o.SingleLayer && !s.Index.AllowSdist
}

// lockLayer is the layer holding the lock at LockFile, its directories
// created with the epoch as their time (a copy sets the times of the
// parents it creates after creating what is in them; mkdir and mkfile
// would leave the directory with the time of the file's creation).
func lockLayer(locked lock.Lock) llb.State {
	src := llb.Scratch().File(llb.Mkfile("/requirements.lock", 0o644, []byte(locked.Text())), llb.WithCustomName("requirements.lock"))
	return llb.Scratch().File(llb.Copy(src, "/requirements.lock", LockFile, &llb.CopyInfo{CreateDestPath: true, CreatedTime: &epoch}),
		llb.WithCustomName("requirements.lock"))
}

// pipArgs runs the base's pip on the venv (pip --python, pip ≥ 22.3).
func pipArgs(sub string) []string {
	return append([]string{"python3", "-m", "pip", "--python", VenvDir + "/bin/python"}, pipCommon(sub)...)
}

// basePipArgs runs the base's pip on its own interpreter, which is the
// venv's (the venv was made by this python3). Resolving and building
// wheels need no venv, and skipping --python saves pip's re-exec (~0.3 s).
func basePipArgs(sub string) []string {
	return append([]string{"python3", "-m", "pip"}, pipCommon(sub)...)
}

func pipCommon(sub string) []string {
	return []string{sub, "--no-input", "--disable-pip-version-check", "--no-cache-dir"}
}

// FindLinksPath is where find-links directory i is mounted in the resolve
// and build steps (a file:// URL in the report names a file there).
func FindLinksPath(i int) string { return path.Join(FindLinksDir, strconv.Itoa(i)) }

// FindLinksName is the session local-directory name of find-links dir i.
func FindLinksName(i int) string { return "find-links-" + strconv.Itoa(i) }

// Resolve runs pip's resolver in the venv with --dry-run and returns the
// state of the output directory, which holds ReportFile. It needs the
// index: the step has no network and reaches the index only through the
// session socket IndexSocketID (when an index URL is configured).
// ResolveOpts tune the resolve step.
type ResolveOpts struct {
	// Trusted are hosts pip may reach over plain http (--trusted-host).
	Trusted []string
	// Refresh ignores a cached resolution (the index may have changed).
	Refresh bool
}

// Resolve runs pip's resolver over every requirement; see the package doc.
func Resolve(base llb.State, s config.Skill, o ResolveOpts) llb.State {
	in := llb.Scratch().File(llb.Mkfile("/requirements.txt", 0o644, requirementsText(s)), llb.WithCustomName("requirements.txt"))
	// Not --quiet: pip says why requirements conflict ("The conflict is
	// caused by") only at its default verbosity.
	argv := append(basePipArgs("install"), "--dry-run", "--ignore-installed")
	return resolveStep(base, s, o, StepResolve, argv, in)
}

// PythonEnvironment runs script (resolver.EnvironmentScript) with the
// base's python3, the network off and the build limits, and returns the
// state of its output directory, which holds EnvironmentFile. It runs the
// base's own pip code to describe the interpreter, nothing of the skill.
func PythonEnvironment(base llb.State, s config.Skill, script string) llb.State {
	argv := []string{"python3", "-I", "-c", script, reportDir + EnvironmentFile}
	run := base.Run(step(StepInspect+" for the builtin resolver", argv, s.Build)...)
	return run.AddMount(reportDir, buildOutput(reportSub))
}

//go:embed installedview.py
var installedViewScript []byte

// viewVenv is where ResolveAdded's step makes the venv of its view of the
// installed set (on the step's tmpfs).
const viewVenv = "/tmp/skillbuild-installed"

// ResolveAdded resolves s's requirements on top of installed, the lock of
// a previous build of the skill whose requirements s's only add to (see
// lock.Document.Incremental): pip runs under the interpreter of a venv
// whose site-packages holds, for each distribution of installed, only a
// dist-info directory with the METADATA that DistInfo synthesizes from
// the recorded metadata (installedview.py). No file of any package is in
// that view, so nothing of the skill's packages runs; pip keeps every
// installed distribution that satisfies the requirements (no
// --ignore-installed) and its report lists only what must be added, or
// replaced (the caller then resolves everything with Resolve). Index
// access, limits, network and caching are Resolve's.
func ResolveAdded(base llb.State, s config.Skill, installed lock.Lock, o ResolveOpts) (llb.State, error) {
	view, err := installedView(installed)
	if err != nil {
		return llb.State{}, err
	}
	in := llb.Scratch().File(llb.Mkfile("/requirements.txt", 0o644, requirementsText(s)).
		Mkfile("/installed.json", 0o644, view), llb.WithCustomNamef("requirements.txt and %d installed distributions", len(installed)))
	script := llb.Scratch().File(llb.Mkfile("/installedview.py", 0o644, installedViewScript), llb.WithCustomName("skillbuild installed view"))
	argv := append([]string{"python3", "-I", "/run/skillbuild/view/installedview.py", inputDir + "/installed.json", viewVenv, "--"},
		append(pipCommon("install"), "--dry-run")...)
	name := fmt.Sprintf("%s added to %d locked distributions (%d requirements)", StepResolve, len(installed), len(s.Requirements))
	return resolveStep(base, s, o, name, argv, in, llb.AddMount("/run/skillbuild/view", script, llb.Readonly)), nil
}

func requirementsText(s config.Skill) []byte {
	var reqs strings.Builder
	for _, r := range s.Requirements {
		reqs.WriteString(r.Raw)
		reqs.WriteByte('\n')
	}
	return []byte(reqs.String())
}

// resolveStep is the resolve step: argv (pip install --dry-run, or what
// runs it) with the report, index, trust and cache arguments added, the
// requirements file from in at inputDir.
func resolveStep(base llb.State, s config.Skill, o ResolveOpts, name string, argv []string, in llb.State, more ...llb.RunOption) llb.State {
	argv = append(argv, "--report", reportDir+ReportFile, "--retries", "1", "--timeout", "30", "-r", RequirementsFile)
	if !s.Index.AllowSdist {
		argv = append(argv, "--only-binary=:all:")
	}
	argv = append(argv, indexArgs(s.Index)...)
	for _, h := range o.Trusted {
		argv = append(argv, "--trusted-host", h)
	}
	extra := append(findLinksMounts(s.Index), llb.AddMount(inputDir, in, llb.Readonly))
	extra = append(extra, more...)
	var access []IndexAccessOpt
	if s.Index.AllowSdist {
		// Source distributions run their build code in this step.
		extra = append(extra, llb.User(BuildUser))
		access = append(access, WithSocketOwner(BuildUID, BuildGID))
	}
	if UsesIndex(s.Index) {
		var netOpts []llb.RunOption
		argv = append(argv, "--proxy", ProxyPlaceholder)
		argv, netOpts = WithIndexAccess(IndexSocketID, argv, access...)
		extra = append(extra, netOpts...)
	}
	if o.Refresh {
		extra = append(extra, llb.IgnoreCache)
	}
	if !s.Index.AllowSdist {
		// pip's HTTP cache, shared by every skill's resolution: index pages
		// and wheel metadata are downloaded once per host, not per skill.
		// Only when no package code runs in the step (no sdists), so no
		// build script can write into what other skills read.
		extra = append(extra, llb.AddMount(pipCacheDir, llb.Scratch(), llb.AsPersistentCacheDir("skillbuild-pip-http", llb.CacheMountShared)))
		for i, a := range argv {
			if a == "--no-cache-dir" {
				argv = append(argv[:i:i], append([]string{"--cache-dir", pipCacheDir}, argv[i+1:]...)...)
				break
			}
		}
	}
	run := base.Run(step(name, argv, s.Build, extra...)...)
	return run.AddMount(reportDir, buildOutput(reportSub))
}

// buildOutput is the base of an output mount that a step running as
// BuildUser can write: an empty directory sub owned by it (BuildKit
// creates the mount point itself owned by root).
func buildOutput(sub string) llb.State {
	return llb.Scratch().File(llb.Mkdir(sub, 0o755, llb.WithUIDGID(BuildUID, BuildGID)), llb.WithCustomNamef("output directory %s", sub))
}

// findLinksMounts mounts each find-links directory read-only where pip
// is told to look (FindLinksDir/N).
func findLinksMounts(ix config.Index) []llb.RunOption {
	var opts []llb.RunOption
	for i, dir := range ix.FindLinks {
		opts = append(opts, llb.AddMount(path.Join(FindLinksDir, strconv.Itoa(i)), llb.Local(FindLinksName(i), llb.SharedKeyHint(dir)), llb.Readonly))
	}
	return opts
}

// UsesIndex reports whether resolution talks to a package index (rather
// than only local find-links directories).
func UsesIndex(ix config.Index) bool {
	return ix.URL != "" || len(ix.ExtraURLs) > 0 || len(ix.FindLinks) == 0
}

func indexArgs(ix config.Index) []string {
	var a []string
	switch {
	case ix.URL != "":
		a = append(a, "--index-url", ix.URL)
	case len(ix.FindLinks) > 0 && len(ix.ExtraURLs) == 0:
		a = append(a, "--no-index")
	}
	for _, u := range ix.ExtraURLs {
		a = append(a, "--extra-index-url", u)
	}
	for i := range ix.FindLinks {
		a = append(a, "--find-links", path.Join(FindLinksDir, strconv.Itoa(i)))
	}
	return a
}

// Fetch returns a state holding exactly d's file at /<filename>, verified
// against its sha256. Index files are fetched by the engine over HTTP with
// the checksum pinned; find-links files come from the local directory.
func Fetch(d lock.Dist, findLinks []string) (llb.State, error) {
	u, err := url.Parse(d.URL)
	if err != nil {
		return llb.State{}, err
	}
	switch u.Scheme {
	case "http", "https":
		// 0644: a source distribution is read by a step running as BuildUser.
		return llb.HTTP(d.URL, llb.Checksum(d.Digest()), llb.Filename(d.Filename), llb.Chmod(0o644), llb.WithCustomNamef("fetch %s==%s", d.Name, d.Version)), nil
	case "file":
		rel, ok := strings.CutPrefix(u.Path, FindLinksDir+"/")
		if !ok {
			return llb.State{}, fmt.Errorf("%s resolved to a local file outside the find-links directories: %s", d.Name, d.URL)
		}
		idx, file, _ := strings.Cut(rel, "/")
		i, err := strconv.Atoi(idx)
		if err != nil || i >= len(findLinks) || file != d.Filename {
			return llb.State{}, fmt.Errorf("%s resolved to an unexpected local file %s", d.Name, d.URL)
		}
		return llb.Local(FindLinksName(i), llb.IncludePatterns([]string{d.Filename}), llb.SharedKeyHint(findLinks[i]),
			llb.WithCustomNamef("fetch %s==%s from find-links", d.Name, d.Version)), nil
	default:
		return llb.State{}, fmt.Errorf("%s resolved to unsupported URL scheme %q", d.Name, u.Scheme)
	}
}

// InstallOpts tune the install steps.
type InstallOpts struct {
	// Trusted are hosts pip may reach over plain http (--trusted-host); a
	// source distribution's build step fetches its build backend from the
	// index.
	Trusted []string
	// MaxLayers bounds the number of distribution layers; past it,
	// distributions share layers in stable buckets (see Layers). Zero
	// means DefaultMaxLayers.
	MaxLayers int
	// SingleLayer installs the whole lock in one step and one layer (the
	// pre-layering pipeline, kept for comparison).
	SingleLayer bool
}

// DefaultMaxLayers is how many distribution layers a skill image gets at
// most. Docker refuses images with more than 127 layers and overlayfs
// mounts get slower with every lower directory; the base and the venv
// take a few.
const DefaultMaxLayers = 100

// Layers groups the lock into install layers. Each distribution is its
// own layer while they fit in maxLayers, so a layer is keyed only by the
// base, the venv and that one file, and every skill pinning the same file
// shares it. Past maxLayers, distributions go into maxLayers buckets by a
// hash of their name: a bucket changes only when one of its members does,
// so most layers are still shared.
func Layers(locked lock.Lock, maxLayers int) []lock.Lock {
	if maxLayers <= 0 {
		maxLayers = DefaultMaxLayers
	}
	if len(locked) <= maxLayers {
		out := make([]lock.Lock, len(locked))
		for i, d := range locked {
			out[i] = lock.Lock{d}
		}
		return out
	}
	buckets := make([]lock.Lock, maxLayers)
	for _, d := range locked {
		h := fnv.New32a()
		h.Write([]byte(d.Name))
		b := int(h.Sum32() % uint32(maxLayers))
		buckets[b] = append(buckets[b], d)
	}
	out := buckets[:0]
	for _, b := range buckets {
		if len(b) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// Install installs exactly the lock into the venv and returns the skill's
// root filesystem: llb.Merge of the venv and one llb.Diff per layer (see
// Layers), in lock order. Each layer installs its own files, mounted
// read-only from their fetch states, on top of the same venv, with the
// network off and the build limits; BuildKit runs independent layers in
// parallel. Source distributions (only with --allow-sdist) are first built
// into wheels, each in its own step that reaches only the index for its
// build backend.
func Install(venv llb.State, s config.Skill, locked lock.Lock, o InstallOpts) (Installed, error) {
	lockFile := lockLayer(locked)
	if len(locked) == 0 {
		return Installed{Root: llb.Merge([]llb.State{venv, lockFile})}, nil
	}
	if o.SingleLayer {
		st, err := installLayer(venv, s, locked, o, fmt.Sprintf(StepInstall+"%d distributions", len(locked)))
		if err != nil {
			return Installed{}, err
		}
		layer := llb.Diff(venv, st, llb.WithCustomName("layer of every distribution"))
		return Installed{Root: llb.Merge([]llb.State{st, lockFile}), Layers: []llb.State{layer}, Locks: []lock.Lock{locked}}, nil
	}
	layers := Layers(locked, o.MaxLayers)
	in := Installed{Locks: layers}
	parts := []llb.State{venv}
	for _, l := range layers {
		name := StepInstall + l[0].Name + "==" + l[0].Version
		if len(l) > 1 {
			name = fmt.Sprintf(StepInstall+"%d distributions (%s…)", len(l), l[0].Name)
		}
		st, err := installLayer(venv, s, l, o, name)
		if err != nil {
			return Installed{}, err
		}
		layer := llb.Diff(venv, st, llb.WithCustomNamef("layer %s", strings.TrimPrefix(name, StepInstall)))
		in.Layers = append(in.Layers, layer)
		parts = append(parts, layer)
	}
	parts = append(parts, lockFile)
	in.Root = llb.Merge(parts, llb.WithCustomNamef("merge %d layers", len(layers)))
	return in, nil
}

// Installed is the install graph of a skill.
type Installed struct {
	// Root is the skill's root filesystem.
	Root llb.State
	// Layers are the distribution layers as they go into the image (each
	// an llb.Diff on the venv), and Locks the distributions each one
	// installs (Layers[i] holds Locks[i]). ListLayers lists what they
	// really contain.
	Layers []llb.State
	Locks  []lock.Lock
}

// LayerList is the path, in ListLayers' output, of layer i's file list.
func LayerList(i int) string { return "/" + strconv.Itoa(i) + ".jsonl" }

// VenvLayerList is the path, in ListLayers' output, of the list of the
// venv's own files (VenvDir and below, in the same format).
const VenvLayerList = "/venv.jsonl"

//go:embed listlayers.py
var listLayersScript []byte

// ListLayers lists the real contents of every distribution layer of in,
// one file per layer (LayerList), and the venv's own files
// (VenvLayerList): each entry's type ("f", "d", "l" or
// "o") and its path in the image, as a JSON array per line. The lists are
// made from the layers themselves, in a step of their own that runs no
// package code, so they hold whatever an install wrote, wherever it wrote
// it; the engine checks them before anything is exported.
func ListLayers(venv llb.State, in Installed, s config.Skill) llb.State {
	script := llb.Scratch().File(llb.Mkfile("/listlayers.py", 0o644, listLayersScript), llb.WithCustomName("skillbuild layer lister"))
	const dir = "/run/skillbuild/layers"
	argv := []string{"python3", "-I", "/run/skillbuild/lister/listlayers.py", dir, layerListDir, strconv.Itoa(len(in.Layers)), VenvDir}
	extra := []llb.RunOption{llb.AddMount("/run/skillbuild/lister", script, llb.Readonly)}
	for i, l := range in.Layers {
		extra = append(extra, llb.AddMount(dir+"/"+strconv.Itoa(i), l, llb.Readonly))
	}
	run := venv.Run(step(fmt.Sprintf(StepCheckLayers+": list the files of %d layers", len(in.Layers)), argv, s.Build, extra...)...)
	return run.AddMount(layerListDir, llb.Scratch())
}

// layerListDir is where ListLayers writes its lists (an output mount).
const layerListDir = "/run/skillbuild/lists"

//go:embed wheelinstall.py
var wheelInstallScript []byte

// WheelInstaller is where a per-layer install step finds wheelinstall.py;
// its argv is VenvDir/bin/python -I -B WheelInstaller followed by (name,
// version, sha256, file) quadruples. The embedded engine recognises
// install steps by it (and may run several in one container).
const WheelInstaller = "/run/skillbuild/installer/wheelinstall.py"

// installWheels installs hash-checked wheels on top of st with the network
// off. Per-layer installs use skillbuild's own wheel installer (one
// interpreter start, ~0.1 s) rather than pip (~1 s: pip starts twice);
// the single-layer pipeline keeps pip's --require-hashes install.
func installWheels(st llb.State, s config.Skill, wheels lock.Lock, o InstallOpts, name string) (llb.State, error) {
	var argv []string
	var extra []llb.RunOption
	if o.SingleLayer {
		lockFile := llb.Scratch().File(llb.Mkfile("/lock.txt", 0o644, []byte(wheels.Text())), llb.WithCustomName("lock.txt"))
		argv = append(pipArgs("install"), "--no-index", "--no-deps", "--require-hashes", "--only-binary=:all:", "-r", inputDir+"/lock.txt")
		extra = append(extra, llb.AddMount(inputDir, lockFile, llb.Readonly))
	} else {
		script := llb.Scratch().File(llb.Mkfile("/wheelinstall.py", 0o644, wheelInstallScript), llb.WithCustomName("skillbuild wheel installer"))
		argv = []string{VenvDir + "/bin/python", "-I", "-B", WheelInstaller}
		extra = append(extra, llb.AddMount(path.Dir(WheelInstaller), script, llb.Readonly))
	}
	for i, d := range wheels {
		f, err := Fetch(d, s.Index.FindLinks)
		if err != nil {
			return llb.State{}, err
		}
		dir := filesDir + "/" + strconv.Itoa(i)
		extra = append(extra, llb.AddMount(dir, f, llb.Readonly))
		if o.SingleLayer {
			argv = append(argv, "--find-links", dir)
		} else {
			argv = append(argv, d.Name, d.Version, d.SHA256, dir+"/"+d.Filename)
		}
	}
	return st.Run(step(name, argv, s.Build, extra...)...).Root(), nil
}

// installLayer installs the distributions of one layer on top of venv.
func installLayer(venv llb.State, s config.Skill, l lock.Lock, o InstallOpts, name string) (llb.State, error) {
	var wheels, sdists lock.Lock
	for _, d := range l {
		if d.Sdist {
			sdists = append(sdists, d)
		} else {
			wheels = append(wheels, d)
		}
	}
	st := venv
	if len(wheels) > 0 {
		stepName := name
		if len(sdists) > 0 {
			stepName = fmt.Sprintf(StepInstall+"%d wheels", len(wheels))
		}
		var err error
		if st, err = installWheels(st, s, wheels, o, stepName); err != nil {
			return llb.State{}, err
		}
	}
	if len(sdists) == 0 {
		return st, nil
	}
	argv := append(pipArgs("install"), "--no-index", "--no-deps")
	var extra []llb.RunOption
	for i, d := range sdists {
		built, err := buildWheel(venv, s, d, o)
		if err != nil {
			return llb.State{}, err
		}
		dir := "/run/skillbuild/built/" + strconv.Itoa(i)
		extra = append(extra, llb.AddMount(dir, built, llb.Readonly))
		argv = append(argv, "--find-links", dir+wheelSub)
	}
	for _, d := range sdists {
		argv = append(argv, d.Name+"=="+d.Version)
	}
	return st.Run(step(fmt.Sprintf(StepInstall+"%d wheels built from source (%s…)", len(sdists), sdists[0].Name), argv, s.Build, extra...)...).Root(), nil
}

// buildWheel turns one hash-checked source distribution into a wheel. Its
// code runs with the build limits and reaches only the package index.
func buildWheel(venv llb.State, s config.Skill, d lock.Dist, o InstallOpts) (llb.State, error) {
	f, err := Fetch(d, s.Index.FindLinks)
	if err != nil {
		return llb.State{}, err
	}
	req := llb.Scratch().File(llb.Mkfile("/sdist.txt", 0o644, []byte(d.LockLine()+"\n")), llb.WithCustomName("sdist.txt"))
	argv := append(basePipArgs("wheel"), "--no-deps", "--require-hashes", "--quiet", "--retries", "1", "--timeout", "30",
		"-r", inputDir+"/sdist.txt", "--find-links", filesDir+"/0", "-w", wheelDir+wheelSub)
	argv = append(argv, indexArgs(s.Index)...)
	for _, h := range o.Trusted {
		argv = append(argv, "--trusted-host", h)
	}
	extra := append(findLinksMounts(s.Index), llb.AddMount(inputDir, req, llb.Readonly), llb.AddMount(filesDir+"/0", f, llb.Readonly),
		llb.User(BuildUser)) // the sdist's build code runs here
	if UsesIndex(s.Index) {
		var netOpts []llb.RunOption
		argv = append(argv, "--proxy", ProxyPlaceholder)
		argv, netOpts = WithIndexAccess(IndexSocketID, argv, WithSocketOwner(BuildUID, BuildGID))
		extra = append(extra, netOpts...)
	}
	run := venv.Run(step(fmt.Sprintf(StepBuildWheel+"%s==%s from source", d.Name, d.Version), argv, s.Build, extra...)...)
	return run.AddMount(wheelDir, buildOutput(wheelSub)), nil
}

// wheelDir is the output mount of a wheel build; the wheel is written to
// its subdirectory wheelSub, which the build user owns.
const (
	wheelDir = "/run/skillbuild/wheel"
	wheelSub = "/w"
)

// WheelInstallScript returns wheelinstall.py, the per-layer installer.
func WheelInstallScript() []byte { return slices.Clone(wheelInstallScript) }
