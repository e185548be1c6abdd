package signal

import (
	"errors"
	"strings"
	"testing"
)

const testSDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"

func TestDecodeValid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{`{"type":"join","room":"standup","displayName":"Ann"}`, &Join{Type: "join", Room: "standup", DisplayName: "Ann"}},
		{`{"type":"callBot","bot":"echo"}`, &CallBot{Type: "callBot", Bot: "echo"}},
		{`{"type":"ping"}`, &Ping{Type: "ping"}},
		{`{"type":"leave"}`, &Leave{Type: "leave"}},
		{`{"type":"mute","kind":"audio","muted":true}`, &Mute{Type: "mute", Kind: "audio", Muted: true}},
		{`{"type":"subscribe","sourceId":5,"layer":"q"}`, &Subscribe{Type: "subscribe", SourceID: 5, Layer: "q"}},
		{`{"type":"subscribe","sourceId":5,"width":640,"height":360}`, &Subscribe{Type: "subscribe", SourceID: 5, Width: 640, Height: 360}},
		{`{"type":"resume","token":"abc"}`, &Resume{Type: "resume", Token: "abc"}},
	} {
		got, err := Decode([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if gs, ws := strings.TrimSpace(strings.ReplaceAll(sprint(got), " ", "")), strings.ReplaceAll(sprint(tc.want), " ", ""); gs != ws {
			t.Errorf("%s: got %s want %s", tc.in, gs, ws)
		}
	}
	pub, err := Decode([]byte(`{"type":"publish","sdp":` + quote(testSDP) + `,"screenTrackIds":["t1"]}`))
	if err != nil || pub.(*Publish).SDP != testSDP || pub.(*Publish).ScreenTrackIDs[0] != "t1" {
		t.Fatalf("publish: %+v %v", pub, err)
	}
	c, err := Decode([]byte(`{"type":"candidate","target":"subscriber","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}`))
	if err != nil || *c.(*Candidate).Candidate.SDPMid != "0" {
		t.Fatalf("candidate: %+v %v", c, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		in, code, contains string
	}{
		{``, CodeBadMessage, "JSON"},
		{`[]`, CodeBadMessage, "JSON object"},
		{`{"type":5}`, CodeBadMessage, "type"},
		{`{}`, CodeBadMessage, "missing"},
		{`{"type":"dance"}`, CodeUnknownType, "dance"},
		{`{"type":"join","room":"a","extra":1}`, CodeBadMessage, "unknown field"},
		{`{"type":"join"}`, CodeBadMessage, "room is required"},
		{`{"type":"join","room":"` + strings.Repeat("x", 65) + `"}`, CodeBadMessage, "at most 64"},
		{`{"type":"join","room":"a\u0000b"}`, CodeBadMessage, "control"},
		{`{"type":"join","room":" a"}`, CodeBadMessage, "space"},
		{`{"type":"join","room":"a"} {"type":"leave"}`, CodeBadMessage, "after top-level value"},
		{`{"type":"publish","sdp":"hello"}`, CodeBadMessage, "v=0"},
		{`{"type":"answer"}`, CodeBadMessage, "v=0"},
		{`{"type":"candidate","target":"both","candidate":{"candidate":""}}`, CodeBadMessage, "target"},
		{`{"type":"candidate","target":"publisher","candidate":{"candidate":"x"}}`, CodeBadMessage, "candidate:"},
		{`{"type":"subscribe","sourceId":0,"layer":"q"}`, CodeBadMessage, "sourceId"},
		{`{"type":"subscribe","sourceId":-1,"layer":"q"}`, CodeBadMessage, "sourceId"},
		{`{"type":"subscribe","sourceId":3,"layer":"x"}`, CodeBadMessage, "layer"},
		{`{"type":"subscribe","sourceId":3}`, CodeBadMessage, "layer or a size"},
		{`{"type":"subscribe","sourceId":3,"width":99999,"height":1}`, CodeBadMessage, "size"},
		{`{"type":"mute","kind":"smell"}`, CodeBadMessage, "kind"},
		{`{"type":"resume","token":""}`, CodeBadMessage, "token"},
		{"{\"type\":\"join\",\"room\":\"\xff\"}", CodeBadMessage, "UTF-8"},
		{`{"type":"publish","sdp":"v=0` + strings.Repeat("a", MaxMessageBytes) + `"}`, CodeTooLarge, "over the limit"},
		{`{"type":"publish","sdp":"v=0` + strings.Repeat("a", MaxSDPBytes) + `"}`, CodeBadMessage, "at most"},
	} {
		_, err := Decode([]byte(tc.in))
		var de *DecodeError
		if !errors.As(err, &de) || !errors.Is(err, ErrDecode) {
			t.Errorf("%.60s: err = %v, want a DecodeError", tc.in, err)
			continue
		}
		if de.Code != tc.code || !strings.Contains(de.Error(), tc.contains) {
			t.Errorf("%.60s: %s %q, want %s containing %q", tc.in, de.Code, de.Error(), tc.code, tc.contains)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","room":"standup","displayName":"Ann"}`,
		`{"type":"callBot","bot":"echo","displayName":"Bo"}`,
		`{"type":"publish","sdp":` + quote(testSDP) + `,"screenTrackIds":["t1"]}`,
		`{"type":"answer","sdp":` + quote(testSDP) + `}`,
		`{"type":"candidate","target":"publisher","candidate":{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}`,
		`{"type":"subscribe","sourceId":5,"layer":"h"}`,
		`{"type":"mute","kind":"video","muted":false}`,
		`{"type":"resume","token":"0123456789abcdef"}`,
		`{"type":"leave"}`, `{"type":"ping"}`, `{"type":"x"}`, `{"type":"join","room":"a"}garbage`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := Decode(b)
		if (msg == nil) == (err == nil) {
			t.Fatalf("Decode(%q) = %v, %v: want exactly one", b, msg, err)
		}
		if err != nil && !errors.Is(err, ErrDecode) {
			t.Fatalf("error %v is not a DecodeError", err)
		}
	})
}
