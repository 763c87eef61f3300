package pid1

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// relay passes the child's report to the report FIFO. The child connects
// to ReportSocket once per message; a connection whose peer (the process
// that connected, SO_PEERCRED) is not the child is closed unread, and of
// a child's connection only the data the child process itself sent
// (SCM_CREDENTIALS, which SO_PASSCRED attaches to every write) is passed
// on: a process the code forked, which inherits whatever the child has
// open, can neither send a report nor add to one.
//
// Every socket is non-blocking and waited for through the Go runtime's
// poller: the relay never holds an OS thread in a system call.
type relay struct {
	ln    *os.File // the listening socket
	out   *os.File // the report FIFO's write end
	child int
	done  chan struct{}
	// broken: a write to the FIFO failed (the host is gone); the rest is
	// read and dropped, so the child never blocks on a full socket.
	broken bool
}

// relayDrainTimeout bounds how long the init waits, after every other
// process is gone, for the report to reach the FIFO.
const relayDrainTimeout = 5 * time.Second

// newRelay binds ReportSocket (before the child starts, so nothing else
// can) for a relay to out.
func newRelay(out *os.File) (*relay, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	// Accepted sockets inherit SO_PASSCRED; what is sent before the accept
	// carries the sender's credentials anyway.
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
// connections still pending are served (the child may have sent its
// report and exited before it was accepted), and the wait for the report
// to reach the FIFO is bounded. A nil relay has nothing to finish.
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
// (until finish sets the listener's deadline).
func (r *relay) accept(wait bool) (int, bool) {
	raw, err := r.ln.SyscallConn()
	if err != nil {
		return 0, false
	}
	nfd, got := -1, false
	err = raw.Read(func(fd uintptr) bool {
		for {
			n, _, err := unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			switch {
			case err == nil:
				nfd, got = n, true
				return true
			case err == unix.EINTR || err == unix.ECONNABORTED:
				continue
			case err == unix.EAGAIN:
				return !wait
			default:
				return true
			}
		}
	})
	return nfd, err == nil && got
}

// serve passes on what the child sent on connection fd, and closes it.
func (r *relay) serve(fd int) {
	c := os.NewFile(uintptr(fd), "report connection")
	defer c.Close()
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	peer := 0
	_ = raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			peer = int(cred.Pid)
		}
	})
	if peer != r.child {
		return // not the child's
	}
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
		if sentBy(oob[:oobn]) != r.child || r.broken {
			continue
		}
		if _, err := r.out.Write(buf[:n]); err != nil {
			r.broken = true
		}
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
