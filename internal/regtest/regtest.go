// Package regtest starts private image registries for the integration
// suite: Debian's docker-registry (the CNCF distribution registry) on
// 127.0.0.1 with a random free port, optionally with htpasswd
// authentication and TLS from a certificate authority made for the test.
// Everything a registry stores or logs lives under one directory.
package regtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Binary is the registry program Debian's docker-registry package installs.
const Binary = "docker-registry"

// CA is a certificate authority that exists only for a test run.
type CA struct {
	// CertFile is the CA certificate (PEM), what a client trusts.
	CertFile string
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
}

// NewCA makes a CA and writes its certificate to dir/ca.pem.
func NewCA(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "skillbuild test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{CertFile: filepath.Join(dir, "ca.pem"), cert: cert, key: key}
	if err := writePEM(ca.CertFile, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	return ca, nil
}

// Issue writes a server certificate for 127.0.0.1 and localhost signed by
// the CA, and its key, into dir; it returns their paths.
func (ca *CA) Issue(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return "", "", err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
		return "", "", err
	}
	if err := writePEM(keyFile, "EC PRIVATE KEY", kb); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// Pool is a cert pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// Registry is a running registry process.
type Registry struct {
	// Host is HOST:PORT, the registry part of an image reference.
	Host string
	// Dir holds the registry's config, storage and log.
	Dir string
	// Log is the registry's log file (access log included).
	Log string
	// User and Password are the htpasswd credentials (empty without auth).
	User, Password string
	// TLS tells whether the registry serves HTTPS.
	TLS bool

	storage string
	ca      *CA
	cmd     *exec.Cmd
	done    chan struct{}
}

type options struct {
	ca             *CA
	user, password string
}

// Opt configures Start.
type Opt func(*options) error

// WithTLS serves HTTPS with a certificate from ca.
func WithTLS(ca *CA) Opt {
	return func(o *options) error {
		if ca == nil {
			return fmt.Errorf("regtest: WithTLS needs a CA")
		}
		o.ca = ca
		return nil
	}
}

// WithAuth requires HTTP basic authentication as user/password
// (htpasswd, bcrypt), as `docker login` is used with.
func WithAuth(user, password string) Opt {
	return func(o *options) error {
		if user == "" || password == "" || strings.Contains(user, ":") {
			return fmt.Errorf("regtest: WithAuth needs a user without ':' and a password")
		}
		o.user, o.password = user, password
		return nil
	}
}

// Start runs a registry with everything under dir and waits (up to 20 s)
// until it answers on its port. env is the process's whole environment.
func Start(dir string, env []string, opts ...Opt) (*Registry, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if _, err := exec.LookPath(Binary); err != nil {
		return nil, fmt.Errorf("%s not found (apt-get install docker-registry; or run `make test`, which installs it)", Binary)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Registry{
		Host: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, Log: filepath.Join(dir, "registry.log"),
		User: o.user, Password: o.password, TLS: o.ca != nil,
		storage: filepath.Join(dir, "storage"), ca: o.ca, done: make(chan struct{}),
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %q\n  delete:\n    enabled: true\n", r.storage)
	fmt.Fprintf(&cfg, "http:\n  addr: %q\n  secret: %q\n", r.Host, randomHex())
	if o.ca != nil {
		cert, key, err := o.ca.Issue(dir)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&cfg, "  tls:\n    certificate: %q\n    key: %q\n", cert, key)
	}
	if o.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(o.password), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(o.user+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
		fmt.Fprintf(&cfg, "auth:\n  htpasswd:\n    realm: skillbuild-test\n    path: %q\n", htpasswd)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(r.Log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	r.cmd = exec.Command(Binary, "serve", cfgPath)
	r.cmd.Env = env
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", Binary, err)
	}
	go func() { r.cmd.Wait(); close(r.done) }() //nolint:errcheck
	if err := r.waitReady(20 * time.Second); err != nil {
		r.Stop()
		return nil, fmt.Errorf("%s on %s: %w (log %s:\n%s)", Binary, r.Host, err, r.Log, r.Tail(20))
	}
	return r, nil
}

// waitReady polls /v2/ until the registry answers with its API header.
func (r *Registry) waitReady(timeout time.Duration) error {
	client := r.HTTPClient()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-r.done:
			return fmt.Errorf("exited at start")
		default:
		}
		resp, err := client.Get(r.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.Header.Get("Docker-Distribution-Api-Version") != "" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer within %s (last error: %v)", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL is the registry's base URL (https:// with TLS).
func (r *Registry) URL() string {
	if r.TLS {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// HTTPClient trusts the registry's CA (and only it, when TLS is on).
func (r *Registry) HTTPClient() *http.Client {
	tr := &http.Transport{Proxy: nil}
	if r.ca != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: r.ca.Pool(), MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// Stop ends the registry (SIGTERM, then SIGKILL after 5 s). Safe on nil.
func (r *Registry) Stop() {
	if r == nil || r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck
		<-r.done
	}
}

// Tail is the last n lines of the registry's log.
func (r *Registry) Tail(n int) string {
	b, _ := os.ReadFile(r.Log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Blobs lists the blobs in the registry's storage with their sizes: what
// was uploaded, whatever the client says.
func (r *Registry) Blobs() (map[string]int64, error) {
	root := filepath.Join(r.storage, "docker/registry/v2/blobs")
	out := map[string]int64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == root {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() || d.Name() != "data" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		// .../blobs/sha256/ab/abcdef.../data
		hex := filepath.Base(filepath.Dir(p))
		algo := filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(p))))
		out[algo+":"+hex] = info.Size()
		return nil
	})
	return out, err
}

// BlobData is the content of blob dgst ("sha256:...") as the registry
// stored it, read from its storage.
func (r *Registry) BlobData(dgst string) ([]byte, error) {
	algo, hex, ok := strings.Cut(dgst, ":")
	if !ok || len(hex) < 2 {
		return nil, fmt.Errorf("regtest: bad digest %q", dgst)
	}
	return os.ReadFile(filepath.Join(r.storage, "docker/registry/v2/blobs", algo, hex[:2], hex, "data"))
}

// TagDigest is the manifest digest the registry's tag points at, read from
// its storage (no client in between); "" when the tag does not exist.
func (r *Registry) TagDigest(repo, tag string) (string, error) {
	b, err := os.ReadFile(filepath.Join(r.storage, "docker/registry/v2/repositories", repo, "_manifests/tags", tag, "current/link"))
	if os.IsNotExist(err) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
}

// WriteDockerConfig writes dir/config.json with an `auths` entry per host,
// as `docker login HOST` does.
func WriteDockerConfig(dir string, creds map[string][2]string) error {
	type auth struct {
		Auth string `json:"auth"`
	}
	doc := struct {
		Auths map[string]auth `json:"auths"`
	}{Auths: map[string]auth{}}
	for host, up := range creds {
		doc.Auths[host] = auth{Auth: base64.StdEncoding.EncodeToString([]byte(up[0] + ":" + up[1]))}
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600)
}

// Skopeo runs skopeo with args and a clean environment (env), returning
// its stdout; a failure carries stderr.
func Skopeo(ctx context.Context, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "skopeo", args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("skopeo %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes(), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex() string {
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck
	return fmt.Sprintf("%x", b)
}
