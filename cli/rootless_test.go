package cli

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGlobalBool(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args       []string
		value, set bool
	}{
		{[]string{"sb", "ls"}, false, false},
		{[]string{"sb", "--rootless", "ls"}, true, true},
		{[]string{"sb", "--rootless=false", "ls"}, false, true},
		{[]string{"sb", "--debug", "-rootless=true", "ls"}, true, true},
		// After the command it is not a global flag.
		{[]string{"sb", "ls", "--rootless"}, false, false},
	}
	for _, tc := range cases {
		v, set := globalBool(tc.args, "rootless")
		assert.Equal(t, tc.value, v, "%v", tc.args)
		assert.Equal(t, tc.set, set, "%v", tc.args)
	}
}

func TestRootDefaultsAreTheSystems(t *testing.T) {
	t.Parallel()
	d := rootlessMode{}.defaults()
	assert.Equal(t, "/run/containerd/containerd.sock", d.address)
	assert.Equal(t, "/var/lib/skillbuild", d.root)
}

func TestNeedsNamespacesOnlyForCommandsThatNeedThem(t *testing.T) {
	t.Parallel()
	flags := newApp(rootlessMode{}.defaults()).Flags
	cases := []struct {
		args []string
		want bool
	}{
		{[]string{"sb", "install", "x"}, true},
		{[]string{"sb", "run", "-c", "print(1)", "x"}, true},
		{[]string{"sb", "ls"}, true},
		{[]string{"sb", "serve"}, true},
		// Global flags before the command, with their values.
		{[]string{"sb", "--root", "/x", "--debug", "prune"}, true},
		{[]string{"sb", "--root=/x", "scan", "pip==23.3"}, true},
		// A flag's value that names a command is not the command.
		{[]string{"sb", "--root", "install", "db", "import", "f.zip"}, false},
		// Commands that talk to no snapshot or task.
		{[]string{"sb", "rootless", "start"}, false},
		{[]string{"sb", "--root", "/x", "db", "import", "f.zip"}, false},
		{[]string{"sb", "version"}, false},
		{[]string{"sb"}, false},
		{[]string{"sb", "--debug"}, false},
		// Help, anywhere in the command's arguments, needs nothing...
		{[]string{"sb", "install", "--help"}, false},
		{[]string{"sb", "run", "x", "-h"}, false},
		{[]string{"sb", "install", "--generate-bash-completion"}, false},
		// ...unless it is an argument after "--".
		{[]string{"sb", "run", "-c", "print(1)", "x", "--", "--help"}, true},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, needsNamespaces(flags, tc.args), "%v", tc.args)
	}
}

func TestEnterNamespacesNotRootlessDoesNothing(t *testing.T) {
	t.Parallel()
	app := newApp(rootlessMode{}.defaults())
	// Not rootless: nothing to do, even for a command that would need the
	// namespaces (rootless, it would re-execute and not return).
	require.True(t, needsNamespaces(app.Flags, []string{"sb", "install", "x"}))
	assert.NoError(t, enterNamespaces(app, rootlessMode{}, []string{"sb", "install", "x"}))
}

func TestRootlessFlagIsRefusedToRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("checks what root is told; this process is not root")
	}
	_, err := detectRootless([]string{"sb", "--rootless", "ls"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--rootless is for ordinary users")
}
