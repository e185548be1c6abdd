// Package examplestest holds the end-to-end tests of the example bots (examples/recorder,
// examples/player, examples/hue): each test builds the example's binary, runs it as its own
// process against a whole calling service on loopback (SFU, signalling, call control), and
// places calls with Go participants (service/internal/testpeer) that send real audio and video.
// Where a test must look at the pixels a bot sends, an in-process observer bot built on the
// public SDK joins the conference and subscribes to the example's video.
//
// The tests live here, under service/, because the participant stand-in is internal to the
// service's tree.
package examplestest
