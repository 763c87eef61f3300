package pid1

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// relay passes the child's report to the host's report connection. The
// child connects to ReportSocket once per message, and of what comes on
// any connection only the data the child process itself sent (its
// SCM_CREDENTIALS, which the kernel checks: no process can claim
// another's pid) is passed on: a process the code forked, which inherits
// whatever the child has open and may connect on its own, can neither
// send a report nor add to one. Each connection is read on its own, so
// none holds up another; one message at a time reaches the host (a
// connection passes on from its first byte of the child's to its end),
// so none is cut into another. The peer of a connection (SO_PEERCRED) is
// not asked: gVisor answers the listener's creator for every accepted
// one. Nor does gVisor fix a message's pid when it is sent, as Linux
// does: it names the sender's pid as the relay reads, and 0 once the
// init has reaped the sender. So the child must not exit before its
// messages are read: the relay closes a connection only at its end,
// and the runner waits for that close (runner.py's _send).
//
// Every socket is non-blocking and waited for through the Go runtime's
// poller: the relay never holds an OS thread in a system call.
type relay struct {
	ln    *os.File // the listening socket
	child int
	done  chan struct{}
	conns sync.WaitGroup // the connections being read

	// turn is held by the connection passing on a message, from its
	// first byte of the child's to its end; it guards out and broken.
	turn sync.Mutex
	out  *os.File // the connection to the host's report socket
	// broken: a write to the host failed (the host is gone); the rest is
	// read and dropped, so the child never blocks on a full socket.
	broken bool
}

// relayDrainTimeout bounds how long the init waits, after every other
// process is gone, for the report to reach the host.
const relayDrainTimeout = 5 * time.Second

// newRelay binds ReportSocket (before the child starts, so nothing else
// can) for a relay to out.
func newRelay(out *os.File) (*relay, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	// Linux's accepted sockets take SO_PASSCRED from the listener, so the
	// credentials of what is sent before serve sets it come along too.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: ReportSocket}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.Listen(fd, 64); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &relay{ln: os.NewFile(uintptr(fd), "report socket"), out: out, done: make(chan struct{})}, nil
}

// start relays what child sends, in the background.
func (r *relay) start(child int) {
	r.child = child
	go r.run()
}

// finish ends the relay once every process but the init is gone: the
// connections still pending are read (the child may have sent its report
// and exited before it was accepted), and the wait for the report to
// reach the host is bounded. A nil relay has nothing to finish.
func (r *relay) finish() {
	if r == nil || r.child == 0 {
		return
	}
	r.ln.SetReadDeadline(time.Now()) //nolint:errcheck // wakes the accept; run drains what is pending
	select {
	case <-r.done:
	case <-time.After(relayDrainTimeout):
	}
}

func (r *relay) run() {
	defer close(r.done)
	defer r.conns.Wait()
	defer r.ln.Close()
	for {
		fd, ok := r.accept(true)
		if !ok {
			break // finish woke it, or the socket failed
		}
		r.serve(fd)
	}
	if r.ln.SetReadDeadline(time.Time{}) != nil {
		return
	}
	for {
		fd, ok := r.accept(false)
		if !ok {
			return
		}
		r.serve(fd)
	}
}

// accept returns the next pending connection; with wait it waits for one
// (until finish sets the listener's deadline). Out of descriptors, it
// waits a little for connections to end (the sandbox's processes may
// hold many open).
func (r *relay) accept(wait bool) (int, bool) {
	raw, err := r.ln.SyscallConn()
	if err != nil {
		return 0, false
	}
	for {
		nfd, full := -1, false
		err = raw.Read(func(fd uintptr) bool {
			for {
				n, _, err := unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
				switch {
				case err == nil:
					nfd = n
					return true
				case err == unix.EINTR || err == unix.ECONNABORTED:
					continue
				case err == unix.EMFILE || err == unix.ENFILE:
					full = true
					return true
				case err == unix.EAGAIN:
					return !wait
				default:
					return true
				}
			}
		})
		if err != nil || !full {
			return nfd, err == nil && nfd >= 0
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serve reads connection fd in the background, passes on what the child
// sent on it, and closes it at its end.
func (r *relay) serve(fd int) {
	c := os.NewFile(uintptr(fd), "report connection")
	raw, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return
	}
	// The sender's credentials come with every read only with
	// SO_PASSCRED on the connection itself (gVisor's accepted sockets do
	// not take it from the listener).
	var serr error
	_ = raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	if serr != nil {
		c.Close()
		return
	}
	r.conns.Add(1)
	go func() {
		defer r.conns.Done()
		defer c.Close()
		holding := false
		defer func() {
			if holding {
				r.turn.Unlock()
			}
		}()
		buf := make([]byte, 64<<10)
		oob := make([]byte, 256)
		for {
			var n, oobn int
			var rerr error
			err := raw.Read(func(fd uintptr) bool {
				n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
				return rerr != unix.EAGAIN
			})
			if err != nil || rerr != nil || n == 0 {
				return
			}
			if sentBy(oob[:oobn]) != r.child {
				continue
			}
			if !holding {
				r.turn.Lock()
				holding = true
			}
			r.pass(buf[:n])
		}
	}()
}

// pass writes p to the host, unless a write failed before. The caller
// holds the turn.
func (r *relay) pass(p []byte) {
	if r.broken {
		return
	}
	if _, err := r.out.Write(p); err != nil {
		r.broken = true
	}
}

// sentBy is the pid in the SCM_CREDENTIALS of a received message's
// control data (0: none). Descriptors passed along (SCM_RIGHTS) are
// closed: nobody sends the init files.
func sentBy(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	pid := 0
	for _, m := range msgs {
		if fds, err := unix.ParseUnixRights(&m); err == nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			continue
		}
		if cred, err := unix.ParseUnixCredentials(&m); err == nil {
			pid = int(cred.Pid)
		}
	}
	return pid
}
