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

func TestEnterNamespacesOnlyForCommandsThatNeedThem(t *testing.T) {
	t.Parallel()
	app := newApp(rootlessMode{}.defaults())
	// Not rootless: nothing to do, whatever the command.
	assert.NoError(t, enterNamespaces(app, rootlessMode{}, []string{"sb", "install", "x"}))
	// Rootless, but the command needs no namespaces (or asks for help):
	// nothing to do either; a command that needs them would exec nsenter.
	m := rootlessMode{enabled: true}
	for _, args := range [][]string{
		{"sb", "rootless", "start"},
		{"sb", "--root", "/x", "db", "import", "f.zip"},
		{"sb", "install", "--help"},
		{"sb"},
	} {
		assert.NoError(t, enterNamespaces(app, m, args), "%v", args)
	}
}

func TestRootlessFlagIsRefusedToRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("checks what root is told; this process is not root")
	}
	_, err := detectRootless([]string{"sb", "--rootless", "ls"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--rootless is for ordinary users")
}
