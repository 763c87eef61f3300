package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/internal/mounts"
	"github.com/stretchr/testify/require"
)

// buildkitd is a real BuildKit daemon with its OCI worker (runc,
// overlayfs) on its own root, started by the suite: the remote builder
// skillbuild drives with --builder unix:///... or tcp://....
type buildkitd struct {
	Addr string // the --builder value
	Root string
	Log  string
	TLS  *testCerts // set for a tcp:// daemon
	cmd  *exec.Cmd
	done chan struct{}
}

var buildkitdBin struct {
	once sync.Once
	path string
	err  error
}

// buildkitdBinary builds buildkitd from the BuildKit version in go.mod,
// once per version and Go release (cached in the user cache directory:
// a cold build takes minutes on two cores).
func buildkitdBinary(t testing.TB) string {
	t.Helper()
	buildkitdBin.once.Do(func() {
		buildkitdBin.path, buildkitdBin.err = buildBuildkitd()
	})
	require.NoError(t, buildkitdBin.err, "build buildkitd")
	return buildkitdBin.path
}

func buildBuildkitd() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/moby/buildkit").Output()
	if err != nil {
		return "", fmt.Errorf("buildkit version from go.mod: %w", err)
	}
	version := strings.TrimSpace(string(out))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "skillbuild", "buildkitd-"+version+"-"+runtime.Version())
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	// A scratch module: buildkitd's own dependencies (cloud cache
	// backends, ...) are not in skillbuild's module graph.
	mod, err := os.MkdirTemp("", "skillbuild-buildkitd-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(mod)
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module skillbuild.test/buildkitd\n"), 0o644); err != nil {
		return "", err
	}
	tmp := bin + ".tmp"
	for _, args := range [][]string{
		{"get", "github.com/moby/buildkit/cmd/buildkitd@" + version},
		{"build", "-o", tmp, "github.com/moby/buildkit/cmd/buildkitd"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = mod
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return bin, os.Rename(tmp, bin)
}

// startBuildkitd starts a buildkitd on a unix socket, or with tls on
// 127.0.0.1 with mutual TLS from a fresh test CA. It is stopped, and its
// root unmounted and removed, when the test ends.
func startBuildkitd(t testing.TB, tls bool) *buildkitd {
	t.Helper()
	bin := buildkitdBinary(t)
	dir, err := os.MkdirTemp(env.dir, "buildkitd-")
	require.NoError(t, err)
	d := &buildkitd{Root: filepath.Join(dir, "root"), Log: filepath.Join(dir, "buildkitd.log"), done: make(chan struct{})}
	args := []string{"--root", d.Root, "--oci-worker=true", "--containerd-worker=false", "--oci-worker-snapshotter=overlayfs"}
	if tls {
		d.TLS = newTestCerts(t, dir)
		port := freePort(t)
		d.Addr = fmt.Sprintf("tcp://127.0.0.1:%d", port)
		args = append(args, "--addr", d.Addr, "--tlscacert", d.TLS.CA, "--tlscert", d.TLS.ServerCert, "--tlskey", d.TLS.ServerKey)
	} else {
		d.Addr = "unix://" + filepath.Join(dir, "buildkitd.sock")
		args = append(args, "--addr", d.Addr)
	}
	logf, err := os.Create(d.Log)
	require.NoError(t, err)
	d.cmd = exec.Command(bin, args...)
	d.cmd.Env = cleanEnv()
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, d.cmd.Start())
	go func() {
		d.cmd.Wait() //nolint:errcheck // the exit is observed through done
		logf.Close()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.Kill(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("--- buildkitd log (%s):\n%s", d.Log, tailFile(d.Log, 3000))
		}
		mounts.UnmountUnder(dir) //nolint:errcheck // best effort before removing its root
		os.RemoveAll(dir)
	})
	require.NoError(t, d.waitReady(time.Minute), tailFile(d.Log, 3000))
	return d
}

// waitReady waits until the daemon accepts connections.
func (d *buildkitd) waitReady(timeout time.Duration) error {
	network, addr := "unix", strings.TrimPrefix(d.Addr, "unix://")
	if strings.HasPrefix(d.Addr, "tcp://") {
		network, addr = "tcp", strings.TrimPrefix(d.Addr, "tcp://")
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return fmt.Errorf("buildkitd exited before it was ready")
		default:
		}
		if c, err := net.Dial(network, addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("buildkitd at %s not ready after %s", d.Addr, timeout)
}

// Kill signals the daemon and waits for it to exit.
func (d *buildkitd) Kill(sig syscall.Signal) {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(sig) //nolint:errcheck // it may have exited
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill() //nolint:errcheck
		<-d.done
	}
}

// BuilderFlags are the skillbuild flags that select this daemon.
func (d *buildkitd) BuilderFlags() []string {
	f := []string{"--builder", d.Addr}
	if d.TLS != nil {
		f = append(f, "--builder-ca", d.TLS.CA, "--builder-cert", d.TLS.ClientCert, "--builder-key", d.TLS.ClientKey)
	}
	return f
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	return tailString(string(b), n)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// testCerts are PEM files of a throw-away CA, a server certificate for
// 127.0.0.1 and a client certificate, both signed by the CA.
type testCerts struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	// OtherCA signed nothing here: a client trusting only it must fail.
	OtherCA string
}

func newTestCerts(t testing.TB, dir string) *testCerts {
	t.Helper()
	caKey, caCert, caPEM := newCA(t, "skillbuild test CA")
	_, _, otherPEM := newCA(t, "another CA")
	c := &testCerts{
		CA: writePEM(t, dir, "ca.pem", caPEM), OtherCA: writePEM(t, dir, "other-ca.pem", otherPEM),
	}
	c.ServerCert, c.ServerKey = leafCert(t, dir, "server", caKey, caCert, x509.ExtKeyUsageServerAuth)
	c.ClientCert, c.ClientKey = leafCert(t, dir, "client", caKey, caCert, x509.ExtKeyUsageClientAuth)
	return c
}

func newCA(t testing.TB, cn string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return key, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func leafCert(t testing.TB, dir, name string, caKey *ecdsa.PrivateKey, ca *x509.Certificate, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return writePEM(t, dir, name+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		writePEM(t, dir, name+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func writePEM(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}
