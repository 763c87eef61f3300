package skill

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/internal/attest"
	"github.com/skillbuild/skillbuild/layers"
	"github.com/skillbuild/skillbuild/scan"
	"github.com/skillbuild/skillbuild/skill/api"
)

// LabelBuilt is the image record label of an image this state root built:
// an HMAC of the digest its name points at, under the root's build key.
// Nothing that pulls, loads or imports an image writes it, and it does not
// follow a name moved to another image.
const LabelBuilt = "org.skillbuild.built"

// buildKeyFile holds the state root's build key.
const buildKeyFile = "build.key"

// buildKey is the state root's build key, made on first use.
func (s *Service) buildKey() ([]byte, error) {
	s.keyOnce.Do(func() {
		p := filepath.Join(s.opts.root, buildKeyFile)
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			b = make([]byte, 32)
			if _, err = rand.Read(b); err == nil {
				err = writeExclusive(p, b)
			}
			if errors.Is(err, fs.ErrExist) {
				b, err = os.ReadFile(p) // another process made it first
			}
		}
		if err == nil && len(b) != 32 {
			err = fmt.Errorf("%s is not a build key (%d bytes)", p, len(b))
		}
		s.key, s.keyErr = b, err
	})
	return s.key, s.keyErr
}

// writeExclusive creates path with b, mode 0600, failing if it exists.
func writeExclusive(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// buildMarks are the record labels of an image this root built, pointing
// at target.
func (s *Service) buildMarks(target digest.Digest) map[string]string {
	key, err := s.buildKey()
	if err != nil {
		return nil // unmarked: runs of it are admitted like a pulled image's
	}
	return map[string]string{LabelBuilt: mark(key, target)}
}

func mark(key []byte, target digest.Digest) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(target))
	return hex.EncodeToString(h.Sum(nil))
}

// builtHere reports whether rec carries this root's mark of its target.
func (s *Service) builtHere(rec images.Image) bool {
	got := rec.Labels[LabelBuilt]
	if got == "" {
		return false
	}
	key, err := s.buildKey()
	return err == nil && hmac.Equal([]byte(got), []byte(mark(key, rec.Target.Digest)))
}

// admission decides which images may run. An image this root built runs
// as its build recorded (its build scanned it). A base runs when the
// service allows bases (the command line does; a server only with
// serve --allow-base-images). Any other image (pulled, loaded, imported
// by another tool or root) runs only when what it holds is what a build
// makes (layers.CheckForeign: its lock against its layers, on a base this
// host trusts) and its lock passes this host's database under this host's
// policy; its own verdict and allow-list count for nothing. Decisions are
// kept by (image, database, policy), so a warm path pays once.
type admission struct {
	mu      sync.Mutex
	decided map[admissionKey]*api.Admission
}

type admissionKey struct {
	target, db, policy string
}

// admitOpts are a run's admission settings.
type admitOpts struct {
	policy         config.Policy
	allowUnscanned bool
	// result receives how the image was admitted (may be nil).
	result func(*api.Admission)
}

// admitter is the runtime's admission hook for runs under opts.
func (s *Service) admitter(client *ctd.Client, opts admitOpts) func(context.Context, images.Image) error {
	return func(ctx context.Context, rec images.Image) error {
		a, err := s.admit(ctx, client, rec, opts)
		if a != nil && opts.result != nil {
			opts.result(a)
		}
		return err
	}
}

// admit decides whether rec may run; see admission.
func (s *Service) admit(ctx context.Context, client *ctd.Client, rec images.Image, opts admitOpts) (*api.Admission, error) {
	name := api.Familiar(rec.Name)
	origin := rec.Labels[LabelOrigin]
	if s.builtHere(rec) {
		return &api.Admission{Origin: api.OriginBuilt}, nil
	}
	if origin == OriginBase {
		if c := s.opts.ceilings; c != nil && !c.AllowBaseImages {
			return nil, fmt.Errorf("image %s is a base image, and this server runs code in skill images only (its operator can allow bases with serve --allow-base-images): %w",
				name, errdefs.ErrInvalidArgument)
		}
		return &api.Admission{Origin: api.OriginBase}, nil
	}
	a := &api.Admission{Origin: describeOrigin(origin)}
	status, err := scan.Status(s.opts.root)
	if err != nil {
		return a, fmt.Errorf("image %s came from %s and must be scanned here before it runs: %w", name, a.Origin, err)
	}
	pol, err := json.Marshal(opts.policy)
	if err != nil {
		return a, err
	}
	key := admissionKey{target: rec.Target.Digest.String(), db: status.SHA256, policy: digest.FromBytes(pol).String()}
	s.admitted.mu.Lock()
	done := s.admitted.decided[key]
	s.admitted.mu.Unlock()
	if done != nil {
		return done, nil
	}
	// A signature the host requires is never waived: --allow-unscanned
	// runs what could not be checked, not what failed a check.
	if err := s.checkSignature(ctx, client, rec, a); err != nil {
		return a, err
	}
	if err := s.verify(ctx, client, rec, opts, a); err != nil {
		if api.IsVulnerable(err) {
			return a, err
		}
		if !opts.allowUnscanned {
			return a, fmt.Errorf("%w (%s)", err, s.advise("pass --allow-unscanned to run it unverified", "a server runs only images it verified"))
		}
		a.Unscanned = fmt.Sprintf("image %s came from %s and was not verified (%v); run with --allow-unscanned", name, a.Origin, err)
		fmt.Fprintln(s.opts.log, "WARNING: "+a.Unscanned)
		return a, nil
	}
	s.admitted.mu.Lock()
	if s.admitted.decided == nil {
		s.admitted.decided = map[admissionKey]*api.Admission{}
	}
	s.admitted.decided[key] = a
	s.admitted.mu.Unlock()
	return a, nil
}

// describeOrigin says where an image came from.
func describeOrigin(origin string) string {
	if origin == "" {
		return "outside this state root (no origin, no build mark of this root)"
	}
	return originPhrase(origin)
}

// verify checks an image from elsewhere (its signature checked already):
// its layers hold what its lock says, on a base this host trusts, and the
// lock passes this host's scan.
func (s *Service) verify(ctx context.Context, client *ctd.Client, rec images.Image, opts admitOpts, a *api.Admission) error {
	name := api.Familiar(rec.Name)
	cs := client.ContentStore()
	_, manifest, err := attest.Read(ctx, cs, rec.Target, platforms.Default())
	if err != nil {
		return fmt.Errorf("image %s: %w", name, err)
	}
	bases, err := s.trustedBases(ctx, client)
	if err != nil {
		return err
	}
	f, err := layers.CheckForeign(ctx, cs, manifest, bases, filepath.Join(s.opts.root, layers.ListDir))
	if err != nil {
		return fmt.Errorf("image %s came from %s and is refused: %w", name, a.Origin, err)
	}
	a.Base = f.Base
	db, err := scan.Open(s.opts.root)
	if err != nil {
		return err
	}
	v, err := scan.Check(db, scan.Packages(f.Lock), opts.policy, time.Now())
	a.Scan = scan.Labels(v)[scan.LabelScan]
	a.DB = v.DB.SHA256
	if err != nil {
		return fmt.Errorf("image %s came from %s and its lock does not pass this host's scan: %w", name, a.Origin, err)
	}
	return nil
}

// trustedBases are the images imported or pulled as a base, by their
// layers.
func (s *Service) trustedBases(ctx context.Context, client *ctd.Client) ([]layers.Base, error) {
	recs, err := client.ImageService().List(ctx, fmt.Sprintf("labels.%q==%s", LabelOrigin, OriginBase))
	if err != nil {
		return nil, fmt.Errorf("list base images: %w", err)
	}
	cs := client.ContentStore()
	var out []layers.Base
	for _, rec := range recs {
		m, err := images.Manifest(ctx, cs, rec.Target, platforms.Default())
		if err != nil {
			continue // a base without this platform holds no image built here
		}
		var cfg ocispec.Image
		if m.Config.Size > 4<<20 {
			continue
		}
		b, err := content.ReadBlob(ctx, cs, m.Config)
		if err != nil || json.Unmarshal(b, &cfg) != nil {
			continue
		}
		out = append(out, layers.Base{Name: api.Familiar(rec.Name), DiffIDs: cfg.RootFS.DiffIDs, Env: cfg.Config.Env})
	}
	return out, nil
}
