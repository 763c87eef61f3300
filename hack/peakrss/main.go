// Command peakrss runs a program and reports that program's own peak
// resident set size, which a Go parent cannot read from wait4.
//
//	peakrss FD PROGRAM [ARG...]
//
// At exec the kernel carries the peak RSS of the memory map being replaced
// into the new program's ru_maxrss (fs/exec.c, exec_mmap). A Go program
// starts its children with vfork, so the map replaced is the parent's own,
// and a child's ru_maxrss is never below its parent's peak: a test binary
// of 150 MiB reads every child it starts as at least 150 MiB. peakrss is a
// small parent: the program's reading starts from peakrss's few MiB.
//
// peakrss writes "MAXRSS_KIB USER_NS SYS_NS\n" to the file descriptor FD
// once the program has exited, and exits as the program did. SIGINT and
// SIGTERM are passed on; the program is killed if peakrss dies.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: peakrss FD PROGRAM [ARG...]")
		os.Exit(2)
	}
	fd, err := strconv.Atoi(os.Args[1])
	if err != nil || fd < 3 {
		fmt.Fprintf(os.Stderr, "peakrss: FD %q: want a descriptor above 2\n", os.Args[1])
		os.Exit(2)
	}
	report := os.NewFile(uintptr(fd), "report")
	syscall.CloseOnExec(fd)

	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "peakrss: %v\n", err)
		os.Exit(127)
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s) //nolint:errcheck // it may have exited
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintf(os.Stderr, "peakrss: %v\n", err)
		os.Exit(127)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	fmt.Fprintf(report, "%d %d %d\n", ru.Maxrss, ru.Utime.Nano(), ru.Stime.Nano())
	report.Close()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		signal.Reset(ws.Signal())
		syscall.Kill(os.Getpid(), ws.Signal()) //nolint:errcheck // exits below if it did not kill
		time.Sleep(time.Second)                // the signal is taken on another thread
	}
	os.Exit(ws.ExitStatus() & 0xff)
}
