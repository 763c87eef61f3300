package api

import (
	"encoding/json"
	"time"
)

// SessionRequest opens a session: a container of a skill's image whose
// interpreter serves a sequence of calls, keeping its globals, imported
// modules and files between them. The skill and limit fields are a run's
// (RunRequest); a call's timeout and output limit are given per call.
type SessionRequest struct {
	SkillID   string   `json:"skill_id"`
	Version   string   `json:"version,omitempty"`
	Repo      string   `json:"repo,omitempty"`
	Image     string   `json:"image,omitempty"`
	Memory    string   `json:"memory,omitempty"`
	CPUs      string   `json:"cpus,omitempty"`
	Pids      string   `json:"pids,omitempty"`
	TmpfsSize string   `json:"tmpfs_size,omitempty"`
	User      string   `json:"user,omitempty"`
	Runtime   string   `json:"runtime,omitempty"`
	Preload   []string `json:"preload,omitempty"`
	// IdleTimeout ends the session after this long without a call
	// ("5m"); empty: the server's default.
	IdleTimeout string `json:"idle_timeout,omitempty"`
	// MaxLifetime ends the session this long after it opened, calls or
	// not ("1h"); empty: the server's default.
	MaxLifetime string `json:"max_lifetime,omitempty"`
}

// RunRequest is the run request of the session's skill and limits (no
// code), as the service resolves and checks a run's.
func (r SessionRequest) RunRequest() RunRequest {
	return RunRequest{SkillID: r.SkillID, Version: r.Version, Repo: r.Repo, Image: r.Image,
		Memory: r.Memory, CPUs: r.CPUs, Pids: r.Pids, TmpfsSize: r.TmpfsSize, User: r.User, Runtime: r.Runtime, Preload: r.Preload}
}

// SessionLimits are the limits a session holds for its whole life.
type SessionLimits struct {
	MemoryBytes int64   `json:"memory_bytes"`
	CPUs        float64 `json:"cpus"`
	Pids        int64   `json:"pids"`
	TmpfsBytes  int64   `json:"tmpfs_bytes"`
}

// Session is an open session: the answer of POST /v1/sessions, and an
// entry of GET /v1/sessions.
type Session struct {
	// SessionID names the session in the calls that use it (128 random
	// bits, hex). Only the identity that opened it can use it.
	SessionID string        `json:"session_id"`
	SkillID   string        `json:"skill_id"`
	Image     string        `json:"image"`
	Runtime   string        `json:"runtime"`
	Limits    SessionLimits `json:"limits"`
	// IdleTimeout and MaxLifetime are the session's (Go durations: "5m0s").
	IdleTimeout string `json:"idle_timeout"`
	MaxLifetime string `json:"max_lifetime"`
	// ExpiresAt is when MaxLifetime ends it.
	ExpiresAt time.Time `json:"expires_at"`
	// Admission says how the image was admitted.
	Admission *Admission `json:"admission,omitempty"`
	// Ended says why the session ended (the answer of DELETE: "closed");
	// absent while it goes on.
	Ended string `json:"ended,omitempty"`
}

// SessionList is the caller's open sessions (GET /v1/sessions).
type SessionList struct {
	Sessions []Session `json:"sessions"`
}

// SessionRunRequest is one call of a session: code run in the session's
// interpreter, with its own inputs, files, timeout and output limit.
type SessionRunRequest struct {
	Code   string          `json:"code"`
	Inputs json.RawMessage `json:"inputs,omitempty"`
	// Files are put under /data/in (read-only), name → standard base64;
	// they stay there for the session's later calls (a name given again
	// is replaced).
	Files       map[string]string `json:"files,omitempty"`
	Timeout     string            `json:"timeout,omitempty"`
	OutputLimit string            `json:"output_limit,omitempty"`
}

// SessionEndedPrefix starts the message of a call on a session that has
// ended, the reason after it ("session ended: timeout"): the server says
// it with exit code 4 (404), and clients read the reason from it.
const SessionEndedPrefix = "session ended: "

// SessionRunResult is what a session's call did: a run's document, and
// whether the call ended the session.
type SessionRunResult struct {
	RunResult
	// SessionEnded says why this call ended the session ("timeout",
	// "oom", "exited", "lifetime"); absent when the session goes on.
	SessionEnded string `json:"session_ended,omitempty"`
}
