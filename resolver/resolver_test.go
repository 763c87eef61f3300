package resolver

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testEnv is a CPython 3.11 on x86_64 Linux as pip 23.0.1 describes it
// (its tags shortened to a few).
func testEnv() *Environment {
	return &Environment{
		Pip: "23.0.1", Packaging: "21.3", PyVersion: "3.11", PythonVersion: "3.11.2",
		Tags: []string{"cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-linux_x86_64", "cp311-abi3-linux_x86_64",
			"py3-none-manylinux_2_17_x86_64", "py311-none-any", "py3-none-any", "py30-none-any"},
		Markers: map[string]string{"implementation_name": "cpython", "implementation_version": "3.11.2", "os_name": "posix",
			"platform_machine": "x86_64", "platform_release": "6.1.0", "platform_system": "Linux", "platform_version": "#1",
			"python_full_version": "3.11.2", "platform_python_implementation": "CPython", "python_version": "3.11", "sys_platform": "linux"},
	}
}

type fixture struct {
	dir string
	srv *pyindex.Server
}

func serve(t *testing.T, wheels []pyindex.Wheel, opts ...pyindex.Opt) *fixture {
	t.Helper()
	dir := t.TempDir()
	for _, w := range wheels {
		_, err := pyindex.BuildWheel(dir, w)
		require.NoError(t, err)
	}
	s, err := pyindex.Serve(dir, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return &fixture{dir: dir, srv: s}
}

func (f *fixture) resolver(t *testing.T, opts ...Opt) *Resolver {
	t.Helper()
	r, err := New(append([]Opt{WithEnvironment(testEnv()), WithTransport(http.DefaultTransport), WithIndexURLs(f.srv.URL()),
		WithWheelDir(t.TempDir())}, opts...)...)
	require.NoError(t, err)
	return r
}

func versions(l lock.Lock) map[string]string {
	out := map[string]string{}
	for _, d := range l {
		out[d.Name] = d.Version
	}
	return out
}

func TestResolveNewestAllowed(t *testing.T) {
	t.Parallel()
	f := serve(t, []pyindex.Wheel{
		{Name: "app", Version: "1.0", Requires: []string{"lib>=1", "extra-dep; extra == 'x'"}, ProvidesExtra: []string{"x"}},
		{Name: "app", Version: "2.0b1"},
		{Name: "lib", Version: "1.0"}, {Name: "lib", Version: "1.5", Tag: "cp311-cp311-manylinux_2_17_x86_64"},
		{Name: "lib", Version: "2.0", Tag: "cp312-cp312-manylinux_2_17_x86_64"},
		{Name: "extra-dep", Version: "0.1"},
	})
	res, err := f.resolver(t).Resolve(context.Background(), []string{"app[x]"}, nil)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"app": "1.0", "lib": "1.5", "extra-dep": "0.1"}, versions(res.Lock))
	for _, d := range res.Lock {
		assert.Equal(t, d.Name == "app", d.Requested, d.Name)
		assert.Len(t, d.SHA256, 64)
		assert.True(t, strings.HasPrefix(d.URL, "http://"+f.srv.Addr()+"/files/"), d.URL)
		assert.NotNil(t, d.Meta)
	}
	assert.Len(t, res.Wheels, 3, "every wheel was downloaded once (no PEP 658 metadata), and is offered to the installs")
	for _, p := range res.Wheels {
		assert.FileExists(t, p)
	}
}

// TestResolveInstalledFirst: locked distributions that still fit are
// kept (no index page read for them) and only what was added is
// returned; one that does not fit is replaced.
func TestResolveInstalledFirst(t *testing.T) {
	t.Parallel()
	f := serve(t, []pyindex.Wheel{
		{Name: "a", Version: "1.0", Requires: []string{"c"}}, {Name: "a", Version: "2.0", Requires: []string{"c"}},
		{Name: "b", Version: "1.0", Requires: []string{"c>=2"}},
		{Name: "c", Version: "1.0"}, {Name: "c", Version: "2.0"}, {Name: "c", Version: "3.0"},
	})
	prev := lock.Lock{
		{Name: "a", Version: "1.0", Meta: &lock.Metadata{Name: "a", RequiresDist: []string{"c"}}},
		{Name: "c", Version: "1.0", Meta: &lock.Metadata{Name: "c"}},
	}
	f.srv.ResetRequests()
	res, err := f.resolver(t).Resolve(context.Background(), []string{"a", "d-missing; python_version < '3'"}, prev)
	require.NoError(t, err)
	assert.Empty(t, res.Lock, "nothing to add")
	assert.Empty(t, f.srv.Requests(), "the index is not asked about locked distributions that fit")

	res, err = f.resolver(t).Resolve(context.Background(), []string{"a", "b"}, prev)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"b": "1.0", "c": "3.0"}, versions(res.Lock), "c 1.0 does not fit b: replaced by the newest")
}

func TestResolveRefusals(t *testing.T) {
	t.Parallel()
	f := serve(t, []pyindex.Wheel{
		{Name: "x", Version: "1.0", Requires: []string{"z<2"}}, {Name: "y", Version: "1.0", Requires: []string{"z>=2"}},
		{Name: "z", Version: "1.0"}, {Name: "z", Version: "2.0"},
		{Name: "new", Version: "1.0", RequiresPython: ">=3.12"},
	})
	var conflict *ConflictError
	_, err := f.resolver(t, WithRequirementsFile("/in/r.txt")).Resolve(context.Background(), []string{"x", "y"}, nil)
	require.ErrorAs(t, err, &conflict)
	assert.Equal(t, []string{"-r /in/r.txt (line 1)", "-r /in/r.txt (line 2)"}, conflict.Triggers)
	assert.Equal(t, []string{"x 1.0 depends on z<2", "y 1.0 depends on z>=2"}, conflict.Causes)

	var noMatch *NoMatchError
	_, err = f.resolver(t).Resolve(context.Background(), []string{"z>=3"}, nil)
	require.ErrorAs(t, err, &noMatch)
	assert.Equal(t, "z>=3", noMatch.Requirement)
	assert.Equal(t, []string{"1.0", "2.0"}, noMatch.Versions)

	_, err = f.resolver(t).Resolve(context.Background(), []string{"new"}, nil)
	require.ErrorAs(t, err, &noMatch)
	assert.Empty(t, noMatch.Versions, "a file for another Python is not a version of this one")
}

// TestResolveLeavesToPip: what the resolver does not reproduce is
// ErrUnsupported with the reason, not a guess.
func TestResolveLeavesToPip(t *testing.T) {
	t.Parallel()
	f := serve(t, []pyindex.Wheel{{Name: "weird", Version: "1.0-foo"}, {Name: "fine", Version: "1.0", Requires: []string{"dep @ https://x/dep.whl"}}})
	for req, why := range map[string]string{"weird": "not PEP 440", "fine": "direct reference"} {
		_, err := f.resolver(t).Resolve(context.Background(), []string{req}, nil)
		assert.ErrorIs(t, err, ErrUnsupported, req)
		assert.ErrorContains(t, err, why, req)
	}
	r, err := New(WithEnvironment(testEnv()), WithTransport(http.DefaultTransport), WithIndexURLs("http://10.1.2.3/simple"))
	require.NoError(t, err)
	_, err = r.Resolve(context.Background(), []string{"x"}, nil)
	assert.ErrorIs(t, err, ErrUnsupported, "pip ignores a plain-http index it does not trust")

	env := testEnv()
	env.Pip = "24.0"
	_, err = New(WithEnvironment(env))
	assert.ErrorIs(t, err, ErrUnsupported, "another pip resolves otherwise")
}

// TestResolveFindLinks: a find-links file is named as the step would see
// it and hashed from the host's copy; nothing is downloaded.
func TestResolveFindLinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := pyindex.BuildWheel(dir, pyindex.Wheel{Name: "local", Version: "1.0+build.1"})
	require.NoError(t, err)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	r, err := New(WithEnvironment(testEnv()), WithFindLinks(dir, "/run/skillbuild/find-links/0"))
	require.NoError(t, err)
	res, err := r.Resolve(context.Background(), []string{"local"}, nil)
	require.NoError(t, err)
	require.Len(t, res.Lock, 1)
	assert.Equal(t, "file:///run/skillbuild/find-links/0/local-1.0%2Bbuild.1-py3-none-any.whl", res.Lock[0].URL)
	assert.Equal(t, "local-1.0+build.1-py3-none-any.whl", res.Lock[0].Filename)
	assert.Empty(t, res.Wheels)
	assert.Zero(t, res.Requests)
	_, err = r.Resolve(context.Background(), []string{"absent"}, nil)
	var noMatch *NoMatchError
	assert.True(t, errors.As(err, &noMatch), "%v", err)
}
