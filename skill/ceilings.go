package skill

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
)

// Ceilings bound what the service's callers may ask of a run: limits
// above them are refused, and so is uid 0 unless AllowRoot. A server's
// operator sets them (serve --max-*); zero fields bound nothing.
type Ceilings struct {
	Limits config.RunLimits
	// AllowRoot lets a caller run code as uid 0.
	AllowRoot bool
	// AllowBaseImages lets a caller run code in a base image (the
	// request's image field); otherwise only skill images run.
	AllowBaseImages bool
	// Runtimes are the runtimes a caller may ask for (config.Runtimes);
	// empty: all of them.
	Runtimes []string
}

// WithCeilings bounds the runs callers ask for.
func WithCeilings(c Ceilings) Opt {
	return func(o *options) error {
		l := c.Limits
		if l.MemoryBytes < 0 || l.CPUs < 0 || l.Pids < 0 || l.Timeout < 0 || l.TmpfsBytes < 0 || l.OutputLimitBytes < 0 {
			return fmt.Errorf("run ceilings must not be negative: %w", errdefs.ErrInvalidArgument)
		}
		for _, r := range c.Runtimes {
			if err := config.ValidateRuntime(r); err != nil {
				return fmt.Errorf("run ceilings: %v: %w", err, errdefs.ErrInvalidArgument)
			}
		}
		o.ceilings = &c
		return nil
	}
}

// numericUser is uid[:gid] in numbers.
var numericUser = regexp.MustCompile(`^([0-9]+)(:[0-9]+)?$`)

// checkCeilings refuses a run above the ceilings, naming the one it
// passes.
func (s *Service) checkCeilings(l config.RunLimits, user string) error {
	c := s.opts.ceilings
	if c == nil {
		return nil
	}
	over := func(what, got, ceiling, flag string) error {
		return fmt.Errorf("%s %s is above this server's ceiling of %s (serve %s): ask for less, or ask the operator to raise it: %w",
			what, got, ceiling, flag, errdefs.ErrInvalidArgument)
	}
	m := c.Limits
	switch {
	case m.MemoryBytes > 0 && l.MemoryBytes > m.MemoryBytes:
		return over("memory", config.FormatSize(l.MemoryBytes), config.FormatSize(m.MemoryBytes), "--max-memory")
	case m.CPUs > 0 && l.CPUs > m.CPUs:
		return over("cpus", fmt.Sprint(l.CPUs), fmt.Sprint(m.CPUs), "--max-cpus")
	case m.Pids > 0 && l.Pids > m.Pids:
		return over("pids", fmt.Sprint(l.Pids), fmt.Sprint(m.Pids), "--max-pids")
	case m.Timeout > 0 && l.Timeout > m.Timeout:
		return over("timeout", l.Timeout.String(), m.Timeout.String(), "--max-timeout")
	case m.TmpfsBytes > 0 && l.TmpfsBytes > m.TmpfsBytes:
		return over("tmpfs_size", config.FormatSize(l.TmpfsBytes), config.FormatSize(m.TmpfsBytes), "--max-tmpfs-size")
	case m.OutputLimitBytes > 0 && l.OutputLimitBytes > m.OutputLimitBytes:
		return over("output_limit", config.FormatSize(l.OutputLimitBytes), config.FormatSize(m.OutputLimitBytes), "--max-output-limit")
	case len(c.Runtimes) > 0 && !slices.Contains(c.Runtimes, l.Runtime):
		return fmt.Errorf("runtime %s is not allowed on this server, which runs code under %s (its operator can allow it with serve --runtimes): %w",
			l.Runtime, strings.Join(c.Runtimes, ", "), errdefs.ErrInvalidArgument)
	}
	if user == "" || c.AllowRoot {
		return nil
	}
	// A name resolves in the image's own /etc/passwd, which the image
	// controls: only numbers say which uid a caller gets.
	mm := numericUser.FindStringSubmatch(user)
	if mm == nil {
		return fmt.Errorf("user %q: this server takes a numeric uid[:gid] (a name resolves in the image's own /etc/passwd): %w", user, errdefs.ErrInvalidArgument)
	}
	if uid, err := strconv.ParseUint(mm[1], 10, 32); err != nil || uid == 0 {
		return fmt.Errorf("user %q: running as uid 0 is not allowed on this server (its operator can allow it with serve --allow-root-user): %w", user, errdefs.ErrInvalidArgument)
	}
	return nil
}
