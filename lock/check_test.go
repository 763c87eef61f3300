package lock

import (
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOrigin(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://127.0.0.1:8080/simple":       "http://127.0.0.1:8080",
		"HTTPS://PyPI.org/simple/":           "https://pypi.org:443",
		"http://index.example/simple":        "http://index.example:80",
		"https://u:p@index.example:8443/x/y": "https://index.example:8443",
		"http://[::1]:9/simple":              "http://[::1]:9",
	} {
		got, err := Origin(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"ftp://x/y", "/simple", "http://:80/x", "http://x:0/", "http://x:99999/"} {
		_, err := Origin(bad)
		assert.Error(t, err, bad)
	}
}

func TestLockCheck(t *testing.T) {
	t.Parallel()
	const findLinksDir = "/run/skillbuild/find-links"
	src := Sources{Origins: []string{"http://127.0.0.1:8080", "https://files.example:443"}, FindLinks: []string{findLinksDir + "/0", findLinksDir + "/1"}}
	dist := func(url, file string) Dist {
		return Dist{Name: "totally-safe", Version: "1.0", URL: url, Filename: file, SHA256: "ab"}
	}
	const whl = "totally_safe-1.0-py3-none-any.whl"
	good := Lock{
		dist("http://127.0.0.1:8080/files/"+whl, whl),
		dist("https://files.example/packages/ab/"+whl, whl),
		dist("https://FILES.example:443/p/"+whl, whl),
		dist("file://"+findLinksDir+"/1/"+whl, whl),
		dist("file://localhost"+findLinksDir+"/0/"+whl, whl),
	}
	require.NoError(t, good.Check(src))
	sdist := Dist{Name: "python-dateutil", Version: "2.8.2", URL: "http://127.0.0.1:8080/f/python-dateutil-2.8.2.tar.gz", Filename: "python-dateutil-2.8.2.tar.gz"}
	require.NoError(t, Lock{sdist}.Check(src), "a source archive's project may contain '-'")
	require.NoError(t, Lock{}.Check(Sources{}))

	for name, d := range map[string]Dist{
		"another port on the index host": dist("http://127.0.0.1:8081/files/"+whl, whl),
		"another scheme":                 dist("https://127.0.0.1:8080/files/"+whl, whl),
		"https index over http":          dist("http://files.example:443/p/"+whl, whl),
		"default port of another scheme": dist("http://files.example/p/"+whl, whl),
		"another host":                   dist("http://127.0.0.2:8080/files/"+whl, whl),
		"credentials":                    dist("http://user:pw@127.0.0.1:8080/files/"+whl, whl),
		"file outside find-links":        dist("file:///etc/"+whl, whl),
		"file in a missing find-links":   dist("file://"+findLinksDir+"/2/"+whl, whl),
		"file below a find-links dir":    dist("file://"+findLinksDir+"/0/sub/"+whl, whl),
		"file climbing out":              dist("file://"+findLinksDir+"/0/../../../etc/"+whl, whl),
		"file on another host":           dist("file://evil"+findLinksDir+"/0/"+whl, whl),
		"index written oddly":            dist("file://"+findLinksDir+"/00/"+whl, whl),
		"file name differs":              dist("http://127.0.0.1:8080/files/"+whl, "other-1.0-py3-none-any.whl"),
		"unsupported scheme":             dist("ftp://127.0.0.1:8080/"+whl, whl),
		"newline":                        dist("http://127.0.0.1:8080/files/"+whl+"\nx", whl),
		"another project's wheel":        dist("http://127.0.0.1:8080/files/evil-1.0-py3-none-any.whl", "evil-1.0-py3-none-any.whl"),
		"another project's sdist":        dist("http://127.0.0.1:8080/files/evil-1.0.tar.gz", "evil-1.0.tar.gz"),
	} {
		err := Lock{good[0], d}.Check(src)
		require.Error(t, err, name)
		assert.True(t, errdefs.IsPermissionDenied(err), "%s: %v", name, err)
		assert.Contains(t, err.Error(), "totally-safe 1.0 resolved to ", name)
		assert.Contains(t, err.Error(), "allowed are files on http://127.0.0.1:8080, https://files.example:443 and files directly in /run/skillbuild/find-links/0, /run/skillbuild/find-links/1", name)
	}

	err := Lock{dist("http://203.0.113.9:80/evil/"+whl, whl)}.Check(Sources{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"http://203.0.113.9:80/evil/`+whl+`"`)
	assert.Contains(t, err.Error(), "not on an allowed index host (http://203.0.113.9:80)")
	assert.Contains(t, err.Error(), "allowed are no sources")
}
