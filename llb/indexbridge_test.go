package llb

import (
	"context"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWithIndexAccess(t *testing.T) {
	t.Parallel()
	cmd := []string{"/venv/bin/python", "-m", "pip", "install", "--dry-run", "--proxy", ProxyPlaceholder, "six"}
	tests := []struct {
		name      string
		opts      []IndexAccessOpt
		wantArgv0 string
		wantPort  string
		wantUID   uint32
		wantGID   uint32
	}{
		{name: "defaults", wantArgv0: "python3", wantPort: "0"},
		{
			name:      "non-root step",
			opts:      []IndexAccessOpt{WithSocketOwner(1000, 1001), WithBridgePython("/usr/bin/python3"), WithBridgePort(3128)},
			wantArgv0: "/usr/bin/python3", wantPort: "3128", wantUID: 1000, wantGID: 1001,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			argv, opts := WithIndexAccess("index", cmd, tt.opts...)
			want := append([]string{tt.wantArgv0, IndexBridgeScript, IndexSocketTarget, tt.wantPort, "--"}, cmd...)
			assert.Equal(t, want, argv)

			st := llb.Image("docker.io/library/python:3.12-slim").Run(append(opts, llb.Args(argv))...).Root()
			def, err := st.Marshal(context.Background())
			require.NoError(t, err)

			exec, files := decode(t, def)
			require.NotNil(t, exec, "no exec op in the definition")
			assert.Equal(t, argv, exec.Meta.Args)
			assert.Equal(t, pb.NetMode_NONE, exec.Network)

			var ssh, script *pb.Mount
			for _, m := range exec.Mounts {
				switch m.Dest {
				case IndexSocketTarget:
					ssh = m
				case IndexBridgeDir:
					script = m
				}
			}
			require.NotNil(t, ssh, "no ssh socket mount")
			assert.Equal(t, pb.MountType_SSH, ssh.MountType)
			require.NotNil(t, ssh.SSHOpt)
			assert.Equal(t, "index", ssh.SSHOpt.ID)
			assert.Equal(t, tt.wantUID, ssh.SSHOpt.Uid)
			assert.Equal(t, tt.wantGID, ssh.SSHOpt.Gid)
			assert.Equal(t, uint32(0o600), ssh.SSHOpt.Mode)
			assert.False(t, ssh.SSHOpt.Optional, "a missing forward must fail the step")

			require.NotNil(t, script, "no bridge script mount")
			assert.True(t, script.Readonly)
			require.Len(t, files, 1)
			mk := files[0].GetMkfile()
			require.NotNil(t, mk)
			assert.Equal(t, "/indexbridge.py", mk.Path)
			assert.Equal(t, IndexBridgeSource(), mk.Data)
		})
	}
}

// decode returns the definition's exec op and its file ops.
func decode(t *testing.T, def *llb.Definition) (*pb.ExecOp, []*pb.FileAction) {
	t.Helper()
	var exec *pb.ExecOp
	var files []*pb.FileAction
	for _, dt := range def.Def {
		var op pb.Op
		require.NoError(t, op.UnmarshalVT(dt))
		switch o := op.Op.(type) {
		case *pb.Op_Exec:
			exec = o.Exec
		case *pb.Op_File:
			files = append(files, o.File.Actions...)
		}
	}
	return exec, files
}
