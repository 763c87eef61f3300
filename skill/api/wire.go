package api

import (
	"strconv"
	"time"

	"github.com/skillbuild/skillbuild/config"
)

// The Wire methods turn a request of the command line, whose skill comes
// from its flags, skill.yaml and -r files (Local.Input, files of the host
// the command runs on), into the request an API caller sends to a server:
// the loaded skill's values in the request's fields, and no Local part.
// What has no field (find-links directories, the database's ages, a run's
// admission policy) is the caller's to refuse before.

// Wire is r as it travels to a server: its skill fields are s's.
func (r InstallRequest) Wire(s config.Skill) InstallRequest {
	return InstallRequest{
		SkillID: s.ID, Version: s.Version, Repo: s.Repo, Base: s.Base,
		Requirements: RequirementLines(s.Requirements),
		IndexURL:     s.Index.URL, ExtraIndexURLs: s.Index.ExtraURLs, AllowSdist: s.Index.AllowSdist,
		BuildMemory: sizeString(s.Build.MemoryBytes), BuildCPUs: cpusString(s.Build.CPUs),
		BuildPids: strconv.FormatInt(s.Build.Pids, 10), BuildTimeout: durationString(s.Build.Timeout),
		NoScan: s.Policy.NoScan, Allow: AllowStrings(s.Policy.Allow), MinSeverity: s.Policy.MinSeverity, AllowStaleDB: s.Policy.AllowStaleDB,
		Refresh: r.Refresh, Preload: s.Preload, Progress: r.Progress,
	}
}

// Wire is r as it travels to a server: the skill's id, version,
// repository and run limits are s's.
func (r RunRequest) Wire(s config.Skill) RunRequest {
	return RunRequest{
		SkillID: s.ID, Version: s.Version, Repo: s.Repo, Image: r.Image, Code: r.Code, Inputs: r.Inputs,
		Memory: sizeString(s.Run.MemoryBytes), CPUs: cpusString(s.Run.CPUs), Pids: strconv.FormatInt(s.Run.Pids, 10),
		Timeout: durationString(s.Run.Timeout), TmpfsSize: sizeString(s.Run.TmpfsBytes), OutputLimit: sizeString(s.Run.OutputLimitBytes),
		Runtime: s.Run.Runtime, User: r.User, Preload: r.Preload, Files: r.Files,
	}
}

// Wire is r as it travels to a server: what to resolve and how are s's
// requirements, base and index settings.
func (r ScanRequest) Wire(s config.Skill) ScanRequest {
	return ScanRequest{
		Requirements: RequirementLines(s.Requirements), NoResolve: r.NoResolve, Base: s.Base,
		IndexURL: s.Index.URL, ExtraIndexURLs: s.Index.ExtraURLs, AllowSdist: s.Index.AllowSdist,
		Allow: r.Allow, MinSeverity: r.MinSeverity, AllowStaleDB: r.AllowStaleDB,
	}
}

// RequirementLines are the requirements as written, one line each.
func RequirementLines(reqs []config.Requirement) []string {
	lines := make([]string, len(reqs))
	for i, r := range reqs {
		lines[i] = r.Raw
	}
	return lines
}

// PinLines are pins as name==version lines.
func PinLines(pins []config.Pin) []string {
	lines := make([]string, len(pins))
	for i, p := range pins {
		lines[i] = p.Name + "==" + p.Version
	}
	return lines
}

// AllowStrings are allow entries in their command-line form,
// ID[@PACKAGE]:YYYY-MM-DD:REASON.
func AllowStrings(entries []config.AllowEntry) []string {
	var out []string
	for _, a := range entries {
		id := a.ID
		if a.Package != "" {
			id += "@" + a.Package
		}
		out = append(out, id+":"+a.Expires.UTC().Format(time.DateOnly)+":"+a.Reason)
	}
	return out
}

// sizeString writes a size as config.ParseSize reads it, in the largest
// binary unit that holds it whole.
func sizeString(n int64) string {
	for _, u := range []struct {
		suffix string
		bytes  int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n >= u.bytes && n%u.bytes == 0 {
			return strconv.FormatInt(n/u.bytes, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func cpusString(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// durationString writes a duration as config.ParseDuration reads it.
func durationString(d time.Duration) string { return d.String() }
