package skill

import (
	"errors"
	"regexp"
	"strings"

	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill/api"
)

// WithFace sets whom the service's errors advise (default api.FaceCLI):
// an API caller gets request fields and endpoints where the command
// line's user gets flags and commands.
func WithFace(f api.Face) Opt {
	return func(o *options) error {
		o.face = f
		return nil
	}
}

// advise is the advice of an error in the words of the service's face.
func (s *Service) advise(cli, apiWords string) string {
	if s.opts.face == api.FaceAPI {
		return apiWords
	}
	return cli
}

// load is config.Load, with the errors of an API request naming its JSON
// fields (build_memory) instead of the flags (--build-memory) they stand
// for.
func (s *Service) load(in config.Input) (config.Skill, error) {
	skill, err := config.Load(in)
	return skill, s.inputError(err)
}

// inputError is err, a configuration error naming the request's fields
// instead of flags when the service speaks to API callers.
func (s *Service) inputError(err error) error {
	var ce *config.Error
	if err == nil || s.opts.face != api.FaceAPI || !errors.As(err, &ce) {
		return err
	}
	out := *ce
	if strings.HasPrefix(out.Field, "--") {
		out.Field = fieldName(out.Field)
	}
	if out.Source == "flags" || out.Source == "args" {
		out.Source = "request"
	}
	out.Msg = flagWord.ReplaceAllStringFunc(out.Msg, fieldName)
	return &out
}

// flagWord is a flag named in a message (--build-memory).
var flagWord = regexp.MustCompile(`--[a-z][a-z-]*`)

// fieldName is the request field a flag stands for: --build-memory is
// build_memory.
func fieldName(flag string) string {
	return strings.ReplaceAll(strings.TrimPrefix(flag, "--"), "-", "_")
}
