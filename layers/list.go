package layers

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ListDir is where the file lists of layer blobs are kept, one file per
// blob named by its digest, under a state root.
const ListDir = "layer-lists"

// ListMaxAge is how long a list nobody used stays (PruneLists).
const ListMaxAge = 7 * 24 * time.Hour

// List is the file list of one layer blob (ParseList's format),
// from the cache when it holds the blob's, else read from the blob.
func List(ctx context.Context, cs content.Provider, desc ocispec.Descriptor, cacheDir string) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, err
	}
	cached := ""
	if cacheDir != "" {
		cached = filepath.Join(cacheDir, desc.Digest.Algorithm().String()+"-"+desc.Digest.Encoded())
		if b, err := os.ReadFile(cached); err == nil {
			now := time.Now()
			os.Chtimes(cached, now, now) //nolint:errcheck // only ages the entry
			return b, nil
		}
	}
	ra, err := cs.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	// The blob is verified against its digest while it is read: the list
	// is of exactly the bytes the image holds.
	verifier := desc.Digest.Verifier()
	// Large reads: each ReadAt of containerd's content proxy is a round
	// trip of its own.
	b, err := listTar(bufio.NewReaderSize(io.TeeReader(content.NewReader(ra), verifier), 1<<20))
	if err != nil {
		return nil, err
	}
	if !verifier.Verified() {
		return nil, fmt.Errorf("layer blob does not match its digest %s", desc.Digest)
	}
	if cached != "" {
		writeCached(cached, b)
	}
	return b, nil
}

// writeCached writes a list into the cache whole (renamed into place), or
// not at all.
func writeCached(name string, b []byte) {
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
}

// listTar lists a (possibly compressed) layer tar: one JSON array [type,
// path] per entry, as listlayers.py lists a mounted layer. A whiteout
// (.wh.NAME: the layer deletes NAME) and an opaque directory marker (the
// layer hides what lower layers hold in the directory) are listed as "o"
// at the path they act on, so that they count as writing it. The tar is
// read to its end, so the whole blob passes any verifier it is read
// through.
func listTar(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(r)
	ds, err := decompress(br)
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	var out []byte
	tr := tar.NewReader(ds)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		p := path.Clean("/" + h.Name)
		typ := "o"
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeLink: // a hard link is a regular file in the layer
			typ = "f"
		case tar.TypeDir:
			typ = "d"
		case tar.TypeSymlink:
			typ = "l"
		}
		dir, base := path.Split(p)
		switch {
		case base == ".wh..wh..opq":
			typ, p = "o", path.Clean(dir)
		case strings.HasPrefix(base, ".wh."):
			typ, p = "o", path.Join(dir, strings.TrimPrefix(base, ".wh."))
		}
		line, err := json.Marshal([]string{typ, p})
		if err != nil {
			return nil, err
		}
		out = append(append(out, line...), '\n')
	}
	// Read the rest (the tar's padding, the compressed stream's end)
	// through the verifier.
	if _, err := io.Copy(io.Discard, ds); err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, err
	}
	return out, nil
}

// decompress reads a layer as gzip, zstd or plain tar, by its first bytes.
func decompress(br *bufio.Reader) (io.ReadCloser, error) {
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return gzip.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// PruneLists removes the lists nobody used for maxAge.
func PruneLists(dir string, maxAge time.Duration) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < maxAge {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
