package llb

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/labels"
	"github.com/skillbuild/skillbuild/layers"
	"github.com/skillbuild/skillbuild/lock"
)

// ImageConfig derives the skill image's config from the base's.
func ImageConfig(baseCfg []byte, s config.Skill, locked lock.Lock, baseRef string, baseDgst digest.Digest, extra map[string]string) ([]byte, error) {
	var img ocispec.Image
	if err := json.Unmarshal(baseCfg, &img); err != nil {
		return nil, fmt.Errorf("base image config: %w", err)
	}
	img.Config.Env = layers.Env(img.Config.Env)
	img.Config.User = User
	img.Config.WorkingDir = WorkDir
	img.Config.Entrypoint = nil
	img.Config.Cmd = []string{"python3"}
	if img.Config.Labels == nil {
		img.Config.Labels = map[string]string{}
	}
	l := img.Config.Labels
	l[labels.SkillID] = s.ID
	l[labels.SkillVersion] = s.Version
	if ll := LockLabel(locked); ll != "" {
		l[labels.Lock] = ll
	}
	l[labels.LockDigest] = locked.Digest().String()
	l[labels.Packages] = fmt.Sprint(len(locked))
	l[labels.Base] = baseRef
	l[labels.BaseDigest] = baseDgst.String()
	if len(s.Preload) > 0 {
		l[labels.Preload] = strings.Join(s.Preload, ",")
	}
	for k, v := range extra {
		l[k] = v
	}
	epoch := time.Unix(0, 0).UTC()
	img.Created = &epoch
	return json.Marshal(img)
}

// maxLabel keeps a label under containerd's 4096-byte limit on a label's
// key and value (tools such as ctr copy image labels onto containers).
const maxLabel = 3072

// LockLabel is the lock for the image's labels: the hash-pinned lock when
// it fits, else just the name==version pins, else nothing. The full lock
// is always in the image at LockFile, and its digest in labels.LockDigest.
func LockLabel(locked lock.Lock) string {
	if t := locked.Text(); len(t) <= maxLabel {
		return t
	}
	var b strings.Builder
	for _, d := range locked {
		b.WriteString(d.Name + "==" + d.Version + "\n")
	}
	if b.Len() <= maxLabel {
		return b.String()
	}
	return ""
}
