package skill

import (
	"encoding/base64"
	"fmt"
	"sort"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/runtime"
	"github.com/skillbuild/skillbuild/skill/api"
)

// inFiles decodes a request's files (name → standard base64) and checks
// them as the runtime will (runtime.CheckFiles): names, count and size.
func inFiles(files map[string]string) (map[string][]byte, error) {
	if len(files) == 0 {
		return nil, nil
	}
	if len(files) > runtime.MaxInFiles {
		// Before decoding what would be refused anyway.
		return nil, fmt.Errorf("files: %d files, at most %d: %w", len(files), runtime.MaxInFiles, errdefs.ErrInvalidArgument)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make(map[string][]byte, len(files))
	total := 0
	for _, name := range names {
		enc := files[name]
		if total+base64.StdEncoding.DecodedLen(len(enc))-2 > runtime.MaxInBytes {
			return nil, fmt.Errorf("files: %q passes the cap of %d bytes for all files together: %w", name, runtime.MaxInBytes, errdefs.ErrInvalidArgument)
		}
		b, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return nil, fmt.Errorf("files: %q: content is not standard base64: %v: %w", name, err, errdefs.ErrInvalidArgument)
		}
		total += len(b)
		out[name] = b
	}
	if err := runtime.CheckFiles(out); err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	return out, nil
}

// outFiles are the files a run returned, content in base64.
func outFiles(files []runtime.File) []api.RunFile {
	if len(files) == 0 {
		return nil
	}
	out := make([]api.RunFile, len(files))
	for i, f := range files {
		out[i] = api.RunFile{Name: f.Name, Size: f.Size, SHA256: f.SHA256, Omitted: f.Omitted}
		if !f.Omitted {
			out[i].Content = base64.StdEncoding.EncodeToString(f.Content)
		}
	}
	return out
}
