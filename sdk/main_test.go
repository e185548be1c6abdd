package sdk

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks, beside the tests' own checks, that no goroutine outlives the package's tests:
// the platform's reader, the legs' DTLS goroutines, the sockets' goroutines.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
