package registry

import (
	"errors"

	remoteserrors "github.com/containerd/containerd/v2/core/remotes/errors"
)

// isHTTPStatus tells whether err carries a registry answer with code.
func isHTTPStatus(err error, code int) bool {
	var st remoteserrors.ErrUnexpectedStatus
	if errors.As(err, &st) {
		return st.StatusCode == code
	}
	var stp *remoteserrors.ErrUnexpectedStatus
	return errors.As(err, &stp) && stp.StatusCode == code
}
