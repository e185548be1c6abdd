// Package rtc holds the WebRTC setup that the service and the bot SDK share for the media
// session between them: the layout of the service's offer (m-lines, mids, codecs, RTCP feedback,
// header extensions), the pion engines each side builds from it, and the transport settings of
// each role (the service offers, is ICE controlling and the DTLS client; the bot is ICE-lite on
// one UDP port shared by all its calls and is the DTLS server).
//
// Both sides import this package so that the offer the service builds and the answer the SDK
// expects can never drift apart. The package rtctest adds a peer in the service's role for tests.
package rtc

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is what an m-line of the offer carries.
type Kind uint8

// Kinds of m-lines, in the order they appear in the offer.
const (
	KindUnknown     Kind = iota
	KindAudio            // one of the loudest speakers; the first also carries the bot's own audio
	KindVideo            // a video slot; the first also carries the bot's own video
	KindScreenShare      // the conference's screen share, service to bot only
)

func (k Kind) String() string {
	switch k {
	case KindAudio:
		return "audio"
	case KindVideo:
		return "video"
	case KindScreenShare:
		return "screenshare"
	}
	return "unknown"
}

// Defaults of the layout.
const (
	DefaultAudioLines = 3 // loudest speakers forwarded to a bot
	DefaultVideoLines = 4 // video slots a bot can subscribe participants onto
	MaxAudioLines     = 16
	MaxVideoLines     = 16
)

// ScreenShareMID is the mid of the screen-share m-line.
const ScreenShareMID = "screenshare"

// Layout is the shape of the service's offer to a bot: Audio audio m-lines, then Video video
// m-lines, then (if ScreenShare) one screen-share video m-line. The zero Layout means the
// defaults with a screen-share line.
type Layout struct {
	Audio       int
	Video       int
	ScreenShare bool
}

// DefaultLayout is the layout the service offers unless configured otherwise.
func DefaultLayout() Layout {
	return Layout{Audio: DefaultAudioLines, Video: DefaultVideoLines, ScreenShare: true}
}

// Normalize returns l with zero counts replaced by the defaults; a zero Layout becomes
// DefaultLayout.
func (l Layout) Normalize() Layout {
	if l == (Layout{}) {
		return DefaultLayout()
	}
	if l.Audio == 0 {
		l.Audio = DefaultAudioLines
	}
	if l.Video == 0 {
		l.Video = DefaultVideoLines
	}
	return l
}

// Validate reports whether the layout's counts are within bounds.
func (l Layout) Validate() error {
	if l.Audio < 1 || l.Audio > MaxAudioLines {
		return fmt.Errorf("rtc: layout has %d audio m-lines, want 1..%d", l.Audio, MaxAudioLines)
	}
	if l.Video < 0 || l.Video > MaxVideoLines {
		return fmt.Errorf("rtc: layout has %d video m-lines, want 0..%d", l.Video, MaxVideoLines)
	}
	return nil
}

// Line is one m-line of the layout.
type Line struct {
	Kind  Kind
	Index int    // position among the lines of its kind
	MID   string // the m-line's mid
}

// BotSends reports whether the bot may send on this m-line: the first audio and the first video
// line are sendrecv in the offer; every other line is service to bot only (sendonly in the offer).
func (l Line) BotSends() bool {
	return l.Index == 0 && (l.Kind == KindAudio || l.Kind == KindVideo)
}

// Lines lists the layout's m-lines in offer order.
func (l Layout) Lines() []Line {
	lines := make([]Line, 0, l.Audio+l.Video+1)
	for i := 0; i < l.Audio; i++ {
		lines = append(lines, Line{KindAudio, i, AudioMID(i)})
	}
	for i := 0; i < l.Video; i++ {
		lines = append(lines, Line{KindVideo, i, VideoMID(i)})
	}
	if l.ScreenShare {
		lines = append(lines, Line{KindScreenShare, 0, ScreenShareMID})
	}
	return lines
}

// AudioMID is the mid of the i-th audio m-line: "audio0", "audio1", ...
func AudioMID(i int) string { return "audio" + strconv.Itoa(i) }

// VideoMID is the mid of the i-th video m-line: "video0", "video1", ...
func VideoMID(i int) string { return "video" + strconv.Itoa(i) }

// ParseMID maps a mid of the layout back to its line. ok is false for a mid the layout does not
// define.
func ParseMID(mid string) (line Line, ok bool) {
	if mid == ScreenShareMID {
		return Line{KindScreenShare, 0, mid}, true
	}
	var kind Kind
	var rest string
	switch {
	case strings.HasPrefix(mid, "audio"):
		kind, rest = KindAudio, mid[len("audio"):]
	case strings.HasPrefix(mid, "video"):
		kind, rest = KindVideo, mid[len("video"):]
	default:
		return Line{}, false
	}
	if rest == "" || len(rest) > 2 || (len(rest) > 1 && rest[0] == '0') {
		return Line{}, false
	}
	i := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			return Line{}, false
		}
		i = i*10 + int(c-'0')
	}
	return Line{kind, i, mid}, true
}
