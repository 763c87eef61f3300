package registry

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
)

// Client reaches registries with one set of credentials and TLS settings.
type Client struct {
	cfg      *configfile.ConfigFile
	insecure map[string]bool
	hosts    docker.RegistryHosts

	mu   sync.Mutex
	used map[string]bool // hosts credentials were sent to
}

type options struct {
	configDir string
	rootCAs   [][]byte
	insecure  []string
}

// Opt configures New.
type Opt func(*options) error

// WithDockerConfigDir reads credentials from dir/config.json (its `auths`
// and credential helpers) instead of docker/cli's default directory
// ($DOCKER_CONFIG, else ~/.docker).
func WithDockerConfigDir(dir string) Opt {
	return func(o *options) error {
		o.configDir = dir
		return nil
	}
}

// WithRootCAs trusts the PEM certificates in pem in addition to the
// system's (a private registry's CA, --registry-ca).
func WithRootCAs(pem []byte) Opt {
	return func(o *options) error {
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return fmt.Errorf("registry CA: no PEM certificate found: %w", errdefs.ErrInvalidArgument)
		}
		o.rootCAs = append(o.rootCAs, pem)
		return nil
	}
}

// WithInsecureHosts lets the given HOST[:PORT]s be reached over plain
// HTTP. No other host ever is.
func WithInsecureHosts(hosts ...string) Opt {
	return func(o *options) error {
		for _, h := range hosts {
			if h == "" || strings.ContainsAny(h, "/ ") {
				return fmt.Errorf("insecure registry %q: expected HOST[:PORT]: %w", h, errdefs.ErrInvalidArgument)
			}
		}
		o.insecure = append(o.insecure, hosts...)
		return nil
	}
}

// New loads the Docker config file and builds the HTTP clients.
func New(opts ...Opt) (*Client, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	cfg, err := dockerconfig.Load(o.configDir)
	if err != nil {
		return nil, fmt.Errorf("docker config: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, p := range o.rootCAs {
		pool.AppendCertsFromPEM(p)
	}
	c := &Client{cfg: cfg, insecure: map[string]bool{}, used: map[string]bool{}}
	for _, h := range o.insecure {
		c.insecure[h] = true
	}
	tr := docker.DefaultHTTPTransport(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	httpClient := &http.Client{Transport: tr}
	auth := docker.NewDockerAuthorizer(docker.WithAuthClient(httpClient), docker.WithAuthCreds(c.creds))
	c.hosts = docker.ConfigureDefaultRegistries(
		docker.WithClient(httpClient),
		docker.WithAuthorizer(auth),
		docker.WithPlainHTTP(func(host string) (bool, error) { return c.insecure[host], nil }),
	)
	return c, nil
}

// ConfigFile is the Docker config file credentials are read from (it need
// not exist).
func (c *Client) ConfigFile() string { return c.cfg.Filename }

// creds answers the authorizer's question "which credentials for host?"
// from the config file, through its credential helper when one is set.
func (c *Client) creds(host string) (string, string, error) {
	key := host
	if host == "registry-1.docker.io" {
		key = "https://index.docker.io/v1/"
	}
	ac, err := c.cfg.GetAuthConfig(key)
	if err != nil {
		return "", "", fmt.Errorf("credentials for %s from %s: %w", host, c.cfg.Filename, err)
	}
	if ac.IdentityToken != "" {
		c.markUsed(host)
		return "", ac.IdentityToken, nil
	}
	if ac.Username != "" || ac.Password != "" {
		c.markUsed(host)
	}
	return ac.Username, ac.Password, nil
}

func (c *Client) markUsed(host string) {
	c.mu.Lock()
	c.used[host] = true
	c.mu.Unlock()
}

func (c *Client) sentCreds(host string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used[host]
}

// resolver is a fresh containerd resolver (it caches tokens per push or
// pull, not across them).
func (c *Client) resolver() remotes.Resolver {
	return docker.NewResolver(docker.ResolverOptions{Hosts: c.hosts})
}

// classify turns a failure talking to host into an error that says what
// to fix, classified for the CLI's exit codes.
func (c *Client) classify(op, host string, err error) error {
	if err == nil {
		return nil
	}
	if errdefs.IsCanceled(err) || errdefs.IsInvalidArgument(err) || errdefs.IsNotFound(err) && !isHTTPStatus(err, http.StatusNotFound) {
		return fmt.Errorf("%s: %w", op, err)
	}
	cfg := c.cfg.Filename
	if cfg == "" {
		cfg = filepath.Join("~", ".docker", "config.json")
	}
	switch {
	case isUnauthorized(err):
		if c.sentCreds(host) {
			return fmt.Errorf("%s: registry %s refused the credentials for %s in %s; run `docker login %s` or fix that entry (%v): %w",
				op, host, host, cfg, host, err, errdefs.ErrPermissionDenied)
		}
		return fmt.Errorf("%s: registry %s wants credentials and %s has none for %s; run `docker login %s` (%v): %w",
			op, host, cfg, host, host, err, errdefs.ErrPermissionDenied)
	case isUnreachable(err):
		return fmt.Errorf("%s: registry %s is unreachable (%v); try again later: %w", op, host, err, errdefs.ErrUnavailable)
	case isTLSError(err):
		return fmt.Errorf("%s: TLS with registry %s failed (%v); give its CA with --registry-ca FILE, or name it with --insecure-registry %s if it serves plain HTTP: %w",
			op, host, err, host, errdefs.ErrFailedPrecondition)
	case isHTTPStatus(err, http.StatusNotFound) || errdefs.IsNotFound(err):
		return fmt.Errorf("%s: %v: %w", op, err, errdefs.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func isUnauthorized(err error) bool {
	if errors.Is(err, docker.ErrInvalidAuthorization) {
		return true
	}
	return isHTTPStatus(err, http.StatusUnauthorized) || isHTTPStatus(err, http.StatusForbidden)
}

func isUnreachable(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op == "dial" || op.Op == "read" || op.Op == "write"
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func isTLSError(err error) bool {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var rec tls.RecordHeaderError
	return errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid) || errors.As(err, &rec) ||
		errors.Is(err, http.ErrSchemeMismatch)
}
