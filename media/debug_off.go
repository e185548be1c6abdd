//go:build !race && !switchboard_debug

package media

// debugChecks turns on the use-after-Release checks: see AudioBuffer.
const debugChecks = false
