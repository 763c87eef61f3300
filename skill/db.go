package skill

import (
	"context"
	"net/http"
	"time"

	"github.com/skillbuild/skillbuild/scan"
	"github.com/skillbuild/skillbuild/skill/api"
)

// DBUpdate downloads the OSV PyPI export from url (a conditional GET)
// and installs it under the state root; changed is false when the source
// had nothing new.
func (s *Service) DBUpdate(ctx context.Context, url string) (m api.DBManifest, changed bool, err error) {
	return scan.Update(ctx, s.opts.root, url, &http.Client{Timeout: 10 * time.Minute})
}

// DBImport verifies an OSV PyPI export zip and installs it under the state
// root.
func (s *Service) DBImport(file string) (api.DBManifest, error) {
	return scan.Import(s.opts.root, file)
}

// DBStatus is the installed database's manifest.
func (s *Service) DBStatus() (api.DBManifest, error) {
	return scan.Status(s.opts.root)
}

// DefaultDBURL is where DBUpdate downloads from unless told otherwise.
const DefaultDBURL = scan.DefaultURL
