package store

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/errdefs"
)

// ExportOCIArchive writes the image name (its index with the attestation
// manifests, every platform it has) as an OCI image layout in a tar
// stream to w: what `skillbuild load`, `ctr import`, `docker load` and
// skopeo's oci-archive: transport read.
func ExportOCIArchive(ctx context.Context, c *ctd.Client, w io.Writer, name string) error {
	full, err := normalizeRef(name)
	if err != nil {
		return err
	}
	if _, err := c.ImageService().Get(ctx, full); err != nil {
		return fmt.Errorf("export %s: %w", name, err)
	}
	if err := archive.Export(ctx, c.ContentStore(), w, archive.WithImage(c.ImageService(), full), archive.WithAllPlatforms(), archive.WithSkipDockerManifest()); err != nil {
		return fmt.Errorf("export %s: %w", name, err)
	}
	return nil
}

// ExportOCILayout writes the image name as an OCI image layout directory
// dir (created; it must not exist or be empty).
func ExportOCILayout(ctx context.Context, c *ctd.Client, dir, name string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("oci-layout directory %s is not empty: %w", dir, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(ExportOCIArchive(ctx, c, pw, name)) }()
	defer pr.Close()
	return untar(pr, dir)
}

// untar writes the regular files and directories of an archive this
// package exported under dir, refusing any path that leaves dir.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		clean := filepath.Clean(h.Name)
		if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("archive entry %q leaves the directory: %w", h.Name, errdefs.ErrInvalidArgument)
		}
		p := filepath.Join(dir, clean)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("archive entry %q: unexpected type %c: %w", h.Name, h.Typeflag, errdefs.ErrInvalidArgument)
		}
	}
}
