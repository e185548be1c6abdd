//go:build race

package leg

const raceEnabled = true
