package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/containerd/v2/client"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// imageInfo is what a run needs of its image beyond the record: the
// config (environment, working directory, user) and the chain ID of its
// root filesystem, the parent of the run's view. Both follow from the
// image's target digest alone (content is addressed by its digest), so
// they are kept per digest, in memory and in the state directory, and a
// run of an image seen before reads no manifest or config from
// containerd.
type imageInfo struct {
	Config  ocispec.ImageConfig `json:"config"`
	ChainID digest.Digest       `json:"chain_id"`
}

// imageInfoCache holds imageInfo per target digest (and platform, which is
// fixed per process: the client's default).
type imageInfoCache struct {
	dir string // on disk, under the state directory; "" for memory only
	mem sync.Map
}

func newImageInfoCache(stateDir string) *imageInfoCache {
	return &imageInfoCache{dir: filepath.Join(stateDir, "images")}
}

// get returns the imageInfo of img: from memory, from disk, or read from
// containerd's content store (and then kept).
func (c *imageInfoCache) get(ctx context.Context, img client.Image) (imageInfo, error) {
	dg := img.Target().Digest
	if v, ok := c.mem.Load(dg); ok {
		return v.(imageInfo), nil
	}
	file := filepath.Join(c.dir, dg.Algorithm().String()+"-"+dg.Encoded()+".json")
	if info, ok := c.load(file); ok {
		c.mem.Store(dg, info)
		return info, nil
	}
	ispec, err := img.Spec(ctx)
	if err != nil {
		return imageInfo{}, fmt.Errorf("config: %w", err)
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return imageInfo{}, fmt.Errorf("root filesystem: %w", err)
	}
	info := imageInfo{Config: ispec.Config, ChainID: identity.ChainID(diffIDs)}
	c.mem.Store(dg, info)
	c.store(file, info)
	return info, nil
}

// load reads a kept imageInfo; anything unreadable counts as missing.
func (c *imageInfoCache) load(file string) (imageInfo, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return imageInfo{}, false
	}
	var info imageInfo
	if json.Unmarshal(b, &info) != nil || info.ChainID.Validate() != nil {
		return imageInfo{}, false
	}
	return info, true
}

// store keeps info on disk, written whole or not at all (a rename); a
// failure only costs the next run a read from containerd.
func (c *imageInfoCache) store(file string, info imageInfo) {
	b, err := json.Marshal(info)
	if err != nil || os.MkdirAll(c.dir, 0o700) != nil {
		return
	}
	tmp, err := os.CreateTemp(c.dir, ".tmp-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), file) != nil {
		os.Remove(tmp.Name())
	}
}
