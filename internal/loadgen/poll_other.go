//go:build !linux

package loadgen

import (
	"errors"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// poller is Linux only (poll_linux.go); elsewhere the lean path reads through Go's sockets
// (takeNet).
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("loadgen: the socket poller is Linux only") }

func (p *poller) poll() int { return 0 }

func (p *poller) close() {}

func (p *poller) leanNet(*stdnet.Net, func([]byte, int64) bool) transport.Net { return nil }
