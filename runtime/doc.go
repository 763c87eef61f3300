// Package runtime runs skill code in its image through containerd, in a
// container that lets it compute and nothing else, and reports a result a
// platform can rely on.
//
// # What a run is
//
// Runner.Run creates a container on a read-only snapshot view of the image
// (one view shared by the runs of the image),
// with a hardened spec (specOpts: one list of oci.SpecOpts on containerd's
// defaults): read-only root, capped tmpfs at /tmp and /dev/shm, memory
// limit with no swap, CPU quota, pids limit, the image's USER but never
// root unless the caller insists (DefaultUID:DefaultGID otherwise), no new
// privileges, no capabilities, containerd's default seccomp profile,
// extra masked paths, a network namespace of its own with only loopback,
// rlimits for open files, file size and core dumps, and none of the host's
// environment.
//
// # Stages
//
// Runner.Run is its stages in order, each usable on its own (a pool of
// warm sandboxes creates ahead and starts later): Runner.Prepare checks the
// request and resolves the image; Runner.Create writes the sandbox files
// and creates the container and its task, not started; Sandbox.Start,
// Sandbox.Wait (kills at the timeout or on cancellation) and
// Sandbox.Collect (OOM counter, output, report, Result) follow; and
// Sandbox.Close removes everything, whatever stage was reached.
//
// # The protocol
//
// The code is never spliced into a string. runner.py, embedded in this
// package, is mounted read-only at SandboxDir with the code file next to
// it. It reads the inputs (a JSON object, compact, on one line: the shim
// never closes a task's stdin) from stdin, runs the code as __main__ with a
// global `inputs` dict and stdin on /dev/null and, if the code sets a
// global `result`, encodes it as JSON. Its report does not go to stdout,
// so nothing the code prints can break it; stdout and stderr are
// captured separately, each cut at the output limit, and the host never
// buffers more than the limits.
//
// Only the runner reports. The report reaches the host through a unix
// socket the host listens on (in the sandbox directory, bind-mounted with
// the runner) over a connection the init alone holds: the init connects
// before it starts anything, the host accepts that one connection and
// removes the socket's path, and the init starts the runner only once the
// path is gone.
// The runner sends its ready line and its report (a session's runner: a
// report line per call), each over a connection
// of its own made when it is sent, to the init's abstract unix socket
// (pid1.ReportSocket), and the init passes on what the runner process
// itself sent and nothing else: the kernel gives it the credentials of
// the sender of every write (SCM_CREDENTIALS). So a process the code forks, which
// inherits everything the runner has open and may run the runner's own
// reporting code, can neither write, corrupt nor forge the report (the
// code itself, in the runner's process, can of course lie about its own
// result).
//
// # Files
//
// Every container (warm ones too, under runc and gVisor) has InDir, a
// read-only bind (nosuid, nodev, noexec) of a directory of the run's state
// directory, and OutDir, a tmpfs of the spec (mode 1777, at most
// MaxOutBytes and a little more, counted against the memory cgroup). Their
// mountpoints come from one more layer, a snapshot on the image's root
// filesystem (onRootParent): the image's root is a read-only view where
// runc cannot create them. The host writes a request's files
// (CheckFiles) into the in directory, mode 0444, through an os.Root that
// follows nothing out of it, before the code can start: at Create for a
// run of its own, before the code file for a warm container or a
// session's call. The runner lists what the code left under OutDir
// (regular files only, no link followed: name, size, SHA-256 and the
// content in base64, within MaxOutFiles and MaxOutBytes) in its report.
// The host trusts none of it: names go through the checks of CheckFiles,
// content must decode to its size and hash and fit the cap, or it is
// dropped and its file marked Omitted; nothing is allocated from a size
// the report claims. The code can lie about its own files as it can about
// its result.
//
// # Sessions
//
// Pool.OpenSession takes a warm container (or starts one the pool's way)
// out of the pool and hands it a session job: its init gets
// pid1.SessionJob with the lifetime in place of a timeout, and keeps
// watching the host (a host that dies ends the container); the runner
// gets a first line "session" and serves calls in one namespace. For each
// call the host writes the call's files, renames the code into place, and
// writes one line with the inputs and a random mark. The runner runs the
// code, collects the files created or changed since the previous call,
// writes a marker with the mark to stdout and stderr, and sends its report
// as a line. The host splits each stream at the marker (markSplitter:
// every byte scanned, also past the output limit), so a call's output is
// its own. A call's timeout is the host's: it kills every process of the
// container. A call during which the OOM-kill counter rose, an
// interpreter that exits, the lifetime, a cancelled call and Close end
// the session (Result.SessionEnded) and remove its container.
//
// The network namespace is new and empty; its loopback is brought up
// (WithLoopbackDown leaves it down), so the code reaches its own 127.0.0.1
// and nothing else: connects elsewhere fail with ENETUNREACH at once and
// DNS fails fast whatever resolv.conf the image has.
//
// # PID 1 and the deadline
//
// PID 1 of the container is not the runner but package pid1's init,
// mounted read-only: the small static program skillbuild-init
// (runtime/pid1/cmd/skillbuild-init) when it lies next to the running
// program as NAME-init and speaks its protocol (it starts in about a
// millisecond), else the running program itself (any program linking
// this package becomes the init when started as pid1.Path; a dynamically
// linked one through its own ELF loader and libraries, mounted next to
// it, so the image's libc does not matter). It
// runs the runner as its child, reaps orphans, ignores every signal the
// sandbox can send it and is not dumpable, and at the timeout kills every
// process of the namespace and exits pid1.DeadlineStatus: the deadline
// holds even when the process that started the run is gone (kill -9,
// SIGPIPE). The host kills at the timeout too, whichever comes first.
// LabelDeadline, set at creation, covers the run (Start moves it only when
// starting took unusually long). Each run holds an flock on an owner file
// in its state directory for as long as its container or view exists;
// Sweep, which the CLI runs in every command that talks to containerd
// (beside the run, in `skillbuild run`), removes what is left of a run
// whose owner lock is free (its process died, kill -9 included) at once,
// and of a run it cannot tell about (another state directory) past its
// deadline. The CLI's sweep walks containerd's snapshots (for views no run
// holds) only when it found a dead run of its own or once a minute
// (WithViewSweepEvery): a walk costs containerd a look at every snapshot.
// It lists the run containers (each record with its spec) once a minute
// too (WithContainerSweepEvery); in between it finds the dead runs of its
// own state directory from their owner locks alone.
//
// # Sharing nothing per user
//
// A run that would run as DefaultUID:DefaultGID gets a uid:gid of its own
// (Result.UID) from RunUIDBase, or from the range WithRunUIDRange sets (a
// rootless user namespace maps only the user's subordinate ids), leased
// with an flock in the state directory, so per-user kernel quotas
// (message queue bytes, RLIMIT_NPROC) are not shared between concurrent
// runs (WithSharedUID turns this off).
// The image's /etc/resolv.conf, which a base made from a host's root
// filesystem carries with that host's nameserver, is covered by a file
// that names none; /tmp and /dev/shm are noexec.
//
// # Limits are reported, not guessed
//
// At the timeout every process of the container is killed (SIGKILL to all
// of them, then the end of its PID namespace) and Result.TimedOut is set.
// Result.OOMKilled comes from the memory cgroup's OOM-kill counter as the
// shim reports it, not from exit status 137. Result.Truncated says output
// was cut. Output that is not UTF-8 is made valid (U+FFFD).
//
// # Output
//
// Output is collected into capped buffers that never block the
// container's pipes; a goroutine forwards it to Request.Stdout and
// Request.Stderr as it comes, and Run waits for those writers only after
// the teardown, so a slow reader never holds up a run or its cleanup.
//
// # Cleanup
//
// The task, container, snapshot and state files of a run are removed on
// every path, including cancellation of ctx (cleanup runs on a context
// that outlives it); once the task is deleted, the container record goes
// and the run lets go of the shared view of its image (the last user
// removes it). Containers carry LabelRun and LabelDeadline; New sweeps
// those of dead processes, and the shared views nobody holds (Sweep).
//
// # Cost per run
//
// What a run asks of containerd is kept to what it needs: the image's
// config and root filesystem chain ID are kept per image digest (in the
// state directory's images/), so a run of a known image does one record
// lookup; the runs of a state directory share one read-only view per
// image root filesystem (sharedview.go: held with an flock per view, made
// by its first user, removed by its last, safe from the garbage collector
// in between; Sweep removes one nobody holds), so a run creates and
// removes no snapshot while another run of the image is alive (a warm
// pool always is); the deadline label is written once; the exited task is
// deleted without a status call; the OOM-kill counter is read from the
// container's memory cgroup file when this process sees it, not through
// the shim's full metrics. The runner imports json and traceback only when
// the run needs them. WithTrace reports each step's duration
// (`skillbuild --debug run` prints them).
//
// # Warm containers
//
// A Pool runs requests like Run, in sandboxes created and started ahead
// of time per image, limits, user and preload list (Request.Preload). Their
// init runs in warm mode (pid1.WarmArgs): the runner starts at once,
// imports its preload modules, says so on its report channel (a newline)
// and waits; only then is the sandbox handed out. The job (the timeout,
// then the inputs line) comes through a pipe, after the code file is in
// place, and the deadline counts from it. Each sandbox serves one run and
// is then removed in the background (the result does not wait for it); a
// replacement starts at once. A run that finds none ready waits for the
// next one started.
//
// A set's depth (how many it keeps ready or starting) follows its demand
// (demand.go): the runs that come while one replacement starts, plus one,
// that is round(rate × start) + 1, within [WithWarmPerImage, WithMaxWarm]
// and the memory budget. rate is a weighted mean of the runs per second
// (each run's sample is one over the gap since the run before, the newest
// weighing a quarter); start is a weighted mean of the measured time from
// a container's start to ready. A run only deepens the set; a run that
// finds none ready adds one more (the runs that waited before it slowed
// the rate down). Replacements start in the background, in parallel up to
// one per core (at least 2): more at once only slow each other and the
// runs beside them down. The janitor (every quarter of the idle timeout)
// lowers the depth of a set without runs since its last round: it takes one
// over the time since its last run as its rate, so its depth falls back
// to the per-image count, and its ready containers beyond the depth are
// destroyed; a set without runs for the idle timeout is dropped.
// PoolStats.Images reports each image's ready, starting and depth.
//
// Warm sandboxes carry LabelPool with their pool's owner ID;
// NewPool removes those whose owner's lock file is free (a killed server).
// A warm init ends its container by itself when no job comes within its
// idle limit, and within a second when its host dies before the job
// came: it holds a connection to the host's report socket, whose other
// end only the host process holds, and polls it for POLLHUP (the host's
// end closed). Its stdin cannot tell: the shim keeps that open. Once the job
// came, the run keeps its own deadline, host or not. Sweep, in the next
// command of any kind, removes the stopped containers and the dead
// pool's owner file.
package runtime
